import type { Config, GitlabConfig } from "./config/resolve.js";
import { withDeadline } from "./deadline.js";
import { ANY_REGISTRY, credentialFor, expandRunners, runnerCredentials, type CredentialOptions } from "./credentials/index.js";
import { oneLine } from "./errors.js";
import { parseImageRef } from "./image.js";
import type { Logger } from "./log.js";
import { holderCredentials, type Held, type HeldStore, type HeldVariableView } from "./gitlab/held.js";
import { NoHarm } from "./probes/guard.js";
import { PROBE_KINDS, type RunnerFacts, type Sink } from "./probes/index.js";
import { keepSecrets, Scrubber, withSecretScope } from "./secret.js";
import type { Task } from "./scheduler.js";
import { taskKey } from "./task-key.js";
import type { Credential, Runner } from "./types.js";

export type { Sink };

export interface Plan {
  runners: Runner[];
  credentials: Map<string, Credential[]>;
  /** Registry paths the job token answers for (GitLab's registry and dependency proxy); empty without `gitlab:`. */
  jobTokenPaths: string[];
  tasks: Task[];
  /** One line per bad input (a config.toml that does not parse, an image that is not a reference…). */
  errors: string[];
  /** The DOCKER_AUTH_CONFIG variables GitLab holds, as of the last crawl (empty without `gitlab.variables`). */
  gitlabVariables: HeldVariableView[];
}

export interface PlanOptions {
  config: Config;
  logger: Logger;
  sink: Sink;
  signal: AbortSignal;
  /** Also plan the credential and certificate checks (the daemon does; `once` runs probes only). */
  checks?: boolean;
  /** The daemon's no-harm state (backoff, shared results, pull states); `once` makes its own. */
  harm?: NoHarm;
  /** The daemon's last crawl of DOCKER_AUTH_CONFIG held in GitLab (`gitlab.variables`); its holders are planned as runners. */
  held?: HeldStore;
}

/**
 * Read the runners and their credentials afresh and turn them into tasks, in
 * three phases: runners (config.toml, ci-prober.yml) → credentials (config.json,
 * helpers, the job token's paths from GitLab) → one task per target of every
 * probe kind. Bad input of one runner never hides the others.
 */
export async function plan(opts: PlanOptions): Promise<Plan> {
  // The credentials read here are the runners' as of now: they replace those of the plan before last.
  const secrets = new Scrubber();
  const p = await withSecretScope(secrets, () => planIn(opts));
  keepSecrets("sources", secrets);
  return p;
}

async function planIn({
  config,
  logger,
  sink,
  signal,
  checks = false,
  harm = new NoHarm(config),
  held: store,
}: PlanOptions): Promise<Plan> {
  const { runners: own, errors: runnerErrors } = await expandRunners(config);
  const errors = runnerErrors.map((e) => e.message);
  const jobTokenPaths = await planJobTokenPaths(config, logger, signal, harm);
  // Each DOCKER_AUTH_CONFIG GitLab holds is planned as a runner named after its holder: its login probes, owner checks and series.
  const held = config.gitlab?.variables ? store?.current : undefined;
  const runners = held ? [...own, ...held.runners] : own;
  if (held) errors.push(...held.errors);
  const credentials = await readCredentials(runners, held, { signal, helperTimeoutMs: config.helperTimeoutMs, jobTokenPaths }, errors);
  const facts = runners.map((runner) => runnerFacts(runner, credentials.get(runner.name) ?? [], errors));
  const deps = {
    config,
    harm,
    sink,
    logger,
    // The same sources as the listing, the job token last among them: the one rule picks what inUse marks.
    credentialFor: (runner: Runner, registry: string, s: AbortSignal) =>
      credentialFor(runner, registry, { signal: s, helperTimeoutMs: config.helperTimeoutMs, jobTokenPaths }),
  };
  const tasks = PROBE_KINDS.filter((k) => checks || !k.daemonOnly).flatMap((k) => k.tasks({ config, runners: facts }, deps));
  if (checks && store && config.gitlab?.variables) tasks.push(crawlTask(config, config.gitlab, store, logger, harm));
  return { runners, credentials, jobTokenPaths, tasks, errors, gitlabVariables: held?.views ?? [] };
}

/**
 * The crawl of DOCKER_AUTH_CONFIG variables, every gitlab.interval (at most once a minute), under the
 * instance's API budget. Its result is planned from the next re-plan on.
 */
function crawlTask(config: Config, gitlab: GitlabConfig, store: HeldStore, logger: Logger, harm: NoHarm): Task {
  return {
    key: taskKey("gitlab_variables", "", gitlab.url),
    // A crawl is a request per group and project: at most once a minute, whatever the owner checks' interval.
    intervalMs: Math.max(gitlab.intervalMs, 60_000),
    // Thousands of projects at the budget's rate take minutes; the crawl gets what a budget-paced crawl needs, not one probe's timeout.
    timeoutMs: Math.max(config.timeoutMs, gitlab.intervalMs, 10 * 60_000),
    group: `gitlab|${gitlab.url}`,
    async run(signal) {
      const [{ gitlabClient }, { crawlHeld }] = await Promise.all([import("./gitlab/client.js"), import("./gitlab/held.js")]);
      const client = gitlabClient(gitlab, logger, harm.gitlab.for(gitlab.url));
      try {
        const crawled = await crawlHeld(client, gitlab, signal);
        store.current = crawled;
        logger.info(
          {
            gitlab: gitlab.url,
            variables: crawled.views.length,
            projects: crawled.crawl.projects.length,
            requests: crawled.crawl.requests,
          },
          "gitlab variables crawled",
        );
      } finally {
        await client.close();
      }
    },
  };
}

/** Longest a plan waits to learn the instance's registry host (a GitLab budget slot included). */
const JOB_TOKEN_LOOKUP_MS = 5000;

/** The job token's registry paths, when `gitlab:` is configured; a GitLab that cannot be asked leaves only the dependency proxy. */
async function planJobTokenPaths(config: Config, logger: Logger, signal: AbortSignal, harm: NoHarm): Promise<string[]> {
  const gitlab = config.gitlab;
  if (!gitlab) return [];
  const [{ gitlabClient }, { jobTokenPaths }] = await Promise.all([import("./gitlab/client.js"), import("./gitlab/job-token.js")]);
  let client: ReturnType<typeof gitlabClient> | undefined;
  const make = () => (client ??= gitlabClient(gitlab, logger, harm.gitlab.for(gitlab.url)));
  try {
    // Its own short deadline: behind a spent GitLab budget (owner checks every gitlab.interval) the look-up
    // would wait out the whole plan's deadline and fail the re-plan; this way it fails at once or soon,
    // and the host learnt before stands.
    return await withDeadline(JOB_TOKEN_LOOKUP_MS, signal, (s) => jobTokenPaths(gitlab, make, s));
  } finally {
    await client?.close();
  }
}

async function readCredentials(
  runners: Runner[],
  held: Held | undefined,
  opts: CredentialOptions,
  errors: string[],
): Promise<Map<string, Credential[]>> {
  const credentials = new Map<string, Credential[]>();
  await Promise.all(
    runners.map(async (runner) => {
      const creds = held?.runners.includes(runner) ? await holderCredentials(held, runner, opts) : await runnerCredentials(runner, opts);
      credentials.set(runner.name, creds);
      for (const c of creds) if (c.error) errors.push(c.error.message);
    }),
  );
  return credentials;
}

/** A runner's images that parse, and the registries it logs in to: those it holds a credential for and those it pulls from. */
export function runnerFacts(runner: Runner, credentials: Credential[], errors: string[]): RunnerFacts {
  // A whole file that could not be read stands under ANY_REGISTRY: it is reported, not a login target. A path key is its own
  // login target (its credential is tried at its registry); the job token is not the runner's to try.
  const registries = new Set(
    credentials.filter((c) => c.registry !== ANY_REGISTRY && c.kind !== "job_token").map((c) => c.path ?? c.registry),
  );
  const images: string[] = [];
  for (const image of runner.images) {
    try {
      registries.add(parseImageRef(image).registry);
      images.push(image);
    } catch (err) {
      errors.push(`${runner.source}: images: ${oneLine(err)}`);
    }
  }
  return { runner, credentials, images, registries: [...registries] };
}
