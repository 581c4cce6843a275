import type { Config, GitlabCanaryConfig, GitlabConfig } from "./config/resolve.js";
import { ANY_REGISTRY, credentialFor, expandRunners, runnerCredentials } from "./credentials/index.js";
import { credentialRow } from "./credentials/format.js";
import { oneLine } from "./errors.js";
import { parseImageRef } from "./image.js";
import type { Logger } from "./log.js";
import { guardedProbe, NoHarm } from "./probes/guard.js";
import { PROBES } from "./probes/index.js";
import { ProbeLog, type ProbeContext } from "./probes/types.js";
import type { CredentialCheck } from "./probes/credential-check.js";
import { registryScheme } from "./registry/client.js";
import { keepSecrets, Scrubber, withSecretScope } from "./secret.js";
import type { Task } from "./scheduler.js";
import type { CredentialView } from "./http/status.js";
import type { Credential, ProbeKind, ProbeResult, Runner } from "./types.js";
import { holderCredentials, type HeldStore, type HeldVariableView } from "./gitlab/held.js";

/** Where results go: metrics, /status, the log — or, for `once`, a list. */
export interface Sink {
  result(key: string, result: ProbeResult): void;
  /** A credential's owner facts (daemon only). */
  check?(key: string, check: CredentialCheck): void;
  /** A registry's certificate expiry, epoch ms, undefined for plain HTTP (daemon only). */
  cert?(registry: string, notAfterMs: number | undefined): void;
}

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
 * Read the runners and their credentials afresh and turn them into tasks: a
 * login per registry a runner holds a credential for or pulls from, a pull per
 * image, a local canary per engine-mode runner, the GitLab canary, and the
 * credential and certificate checks. Bad input of one runner never hides the others.
 */
export async function plan(opts: PlanOptions): Promise<Plan> {
  // The credentials read here are the runners' as of now: they replace those of the plan before last.
  const secrets = new Scrubber();
  const p = await withSecretScope(secrets, () => planIn(opts));
  keepSecrets("sources", secrets);
  return p;
}

async function planIn({ config, logger, sink, signal, checks = false, harm = new NoHarm(config), held: store }: PlanOptions): Promise<Plan> {
  const { runners: own, errors: runnerErrors } = await expandRunners(config);
  const errors = runnerErrors.map((e) => e.message);
  const credentials = new Map<string, Credential[]>();
  const jobTokenPaths = await planJobTokenPaths(config, logger, signal, harm);
  // Each DOCKER_AUTH_CONFIG GitLab holds is planned as a runner named after its holder: its login probes, owner checks and series.
  const held = config.gitlab?.variables ? store?.current : undefined;
  const runners = held ? [...own, ...held.runners] : own;
  if (held) errors.push(...held.errors);
  await Promise.all(
    runners.map(async (runner) => {
      const opts = { signal, helperTimeoutMs: config.helperTimeoutMs, jobTokenPaths };
      const creds = held?.runners.includes(runner) ? await holderCredentials(held, runner, opts) : await runnerCredentials(runner, opts);
      credentials.set(runner.name, creds);
      for (const c of creds) if (c.error) errors.push(c.error.message);
    }),
  );
  const tasks: Task[] = [];
  for (const runner of runners) {
    const interval = runner.intervalMs ?? config.intervalMs;
    const timeout = runner.timeoutMs ?? config.timeoutMs;
    // A whole file that could not be read stands under ANY_REGISTRY: it is reported, not a login target. A path key is its own
    // login target (its credential is tried at its registry); the job token is not the runner's to try.
    const registries = new Set(
      (credentials.get(runner.name) ?? []).filter((c) => c.registry !== ANY_REGISTRY && c.kind !== "job_token").map((c) => c.path ?? c.registry),
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
    const add = (probe: ProbeKind, target: string, group: string, intervalMs = interval, timeoutMs = timeout) =>
      tasks.push(probeTask({ config, logger, sink, runner, probe, target, group, intervalMs, timeoutMs, harm }));
    for (const registry of registries) add("login", registry, registry);
    for (const image of images) add("pull", image, parseImageRef(image).registry);
    const local = config.canary.local;
    if (local && runner.mode === "engine" && (local.runners === undefined || local.runners.includes(runner.name))) {
      add("canary", "local", parseImageRef(local.image).registry, local.intervalMs ?? interval, local.timeoutMs ?? timeout);
    }
  }
  const gitlabCanary = config.canary.gitlab;
  if (gitlabCanary) tasks.push(gitlabCanaryTask(config, gitlabCanary, logger, sink, harm));
  if (checks && sink.check && config.gitlab) {
    for (const runner of runners) {
      const creds = (credentials.get(runner.name) ?? []).filter((c) => !c.error && c.secret !== undefined);
      if (creds.length > 0) tasks.push(credentialCheckTask(config, config.gitlab, runner, creds, logger, sink, harm));
    }
  }
  if (checks && sink.cert) {
    for (const registry of tlsRegistries(config, credentials, runners)) tasks.push(certificateTask(config, registry, sink));
  }
  if (checks && store && config.gitlab?.variables) tasks.push(crawlTask(config, config.gitlab, store, logger, harm));
  return { runners, credentials, jobTokenPaths, tasks, errors, gitlabVariables: held?.views ?? [] };
}

/**
 * The crawl of DOCKER_AUTH_CONFIG variables, every gitlab.interval, under the
 * instance's API budget. Its result is planned from the next re-plan on.
 */
function crawlTask(config: Config, gitlab: GitlabConfig, store: HeldStore, logger: Logger, harm: NoHarm): Task {
  return {
    key: `gitlab-variables|${gitlab.url}`,
    intervalMs: gitlab.intervalMs,
    // Thousands of projects at the budget's rate take minutes; the crawl gets what a budget-paced crawl needs, not one probe's timeout.
    timeoutMs: Math.max(config.timeoutMs, gitlab.intervalMs, 10 * 60_000),
    group: `gitlab|${gitlab.url}`,
    async run(signal) {
      const [{ GitlabClient }, { crawlHeld }] = await Promise.all([import("./gitlab/client.js"), import("./gitlab/held.js")]);
      const budget = harm.gitlab.for(gitlab.url);
      const client = new GitlabClient({ url: gitlab.url, ...(gitlab.token ? { token: gitlab.token } : {}), ...(gitlab.ca !== undefined ? { ca: gitlab.ca } : {}), logger, budget });
      try {
        const held = await crawlHeld(client, gitlab, signal);
        store.current = held;
        logger.info({ gitlab: gitlab.url, variables: held.views.length, projects: held.crawl.projects.length, requests: held.crawl.requests }, "gitlab variables crawled");
      } finally {
        await client.close();
      }
    },
  };
}

/** The job token's registry paths, when `gitlab:` is configured; a GitLab that cannot be asked leaves only the dependency proxy. */
async function planJobTokenPaths(config: Config, logger: Logger, signal: AbortSignal, harm: NoHarm): Promise<string[]> {
  const gitlab = config.gitlab;
  if (!gitlab) return [];
  const [{ GitlabClient }, { jobTokenPaths }] = await Promise.all([import("./gitlab/client.js"), import("./gitlab/job-token.js")]);
  let client: InstanceType<typeof GitlabClient> | undefined;
  const budget = harm.gitlab.for(gitlab.url);
  const make = () =>
    (client ??= new GitlabClient({ url: gitlab.url, ...(gitlab.token ? { token: gitlab.token } : {}), ...(gitlab.ca !== undefined ? { ca: gitlab.ca } : {}), logger, budget }));
  try {
    return await jobTokenPaths(gitlab, make, signal);
  } finally {
    await client?.close();
  }
}

function gitlabCanaryTask(config: Config, cfg: GitlabCanaryConfig, logger: Logger, sink: Sink, harm: NoHarm): Task {
  const key = `canary|gitlab|${cfg.project}`;
  return {
    key,
    intervalMs: cfg.intervalMs,
    ...(cfg.schedule !== undefined ? { schedule: cfg.schedule } : {}),
    // The canary cancels its pipeline at its own timeout; the task's deadline leaves room for that.
    timeoutMs: cfg.timeoutMs + 30_000,
    group: `gitlab|${cfg.url}`,
    async run(signal) {
      const { gitlabCanary, gitlabCanaryRunner } = await import("./probes/canary-gitlab.js");
      const runner = gitlabCanaryRunner(cfg);
      const result = await gitlabCanary({
        config,
        runner,
        target: cfg.project,
        signal,
        log: new ProbeLog(),
        logger,
        credentialFor: async () => undefined,
        gitlabBudget: harm.gitlab.for(cfg.url),
      });
      sink.result(key, result);
    },
  };
}

function credentialCheckTask(config: Config, gitlab: GitlabConfig, runner: Runner, creds: Credential[], logger: Logger, sink: Sink, harm: NoHarm): Task {
  return {
    key: `check|${runner.name}`,
    intervalMs: gitlab.intervalMs,
    timeoutMs: config.timeoutMs,
    group: `gitlab|${gitlab.url}`,
    async run(signal) {
      const [{ GitlabClient }, { checkCredential }] = await Promise.all([import("./gitlab/client.js"), import("./probes/credential-check.js")]);
      const budget = harm.gitlab.for(gitlab.url);
      const client = new GitlabClient({ url: gitlab.url, ...(gitlab.token ? { token: gitlab.token } : {}), ...(gitlab.ca !== undefined ? { ca: gitlab.ca } : {}), logger, budget });
      for (const c of creds) {
        // Owner facts are keyed by the path the key names, as credential_info is: a path key and its host are two credentials.
        const check = await checkCredential(client, { ...c, registry: c.path ?? c.registry }, signal, logger);
        sink.check?.(`check|${runner.name}|${c.path ?? c.registry}`, check);
      }
    },
  };
}

function certificateTask(config: Config, registry: string, sink: Sink): Task {
  return {
    key: `tls|${registry}`,
    intervalMs: Math.max(config.intervalMs, 60_000),
    timeoutMs: config.timeoutMs,
    group: registry,
    async run(signal) {
      const { certificateExpiry } = await import("./registry/tls.js");
      const ca = config.registries[registry]?.ca;
      const found = await certificateExpiry(registry, { signal, ...(ca !== undefined ? { ca } : {}) });
      sink.cert?.(registry, found?.notAfter);
    },
  };
}

interface ProbeTaskOptions {
  config: Config;
  logger: Logger;
  sink: Sink;
  runner: Runner;
  probe: ProbeKind;
  target: string;
  group: string;
  intervalMs: number;
  timeoutMs: number;
  harm?: NoHarm;
}

export function probeTask(o: ProbeTaskOptions): Task {
  const key = `${o.probe}|${o.runner.name}|${o.target}`;
  return {
    key,
    intervalMs: o.intervalMs,
    group: o.group,
    ...(o.config.schedule !== undefined ? { schedule: o.config.schedule } : {}),
    timeoutMs: o.timeoutMs,
    async run(signal) {
      // The credential the probe used goes with its result, so a failure names the user and the file.
      let used: Credential | undefined;
      // One look-up per registry and run: the no-harm guard and the probe body see the same credential.
      const looked = new Map<string, Promise<Credential | undefined>>();
      const lookUp = (registry: string) => {
        let found = looked.get(registry);
        if (found === undefined) {
          found = credentialFor(o.runner, registry, { signal, helperTimeoutMs: o.config.helperTimeoutMs }).then((c) => (used = c));
          looked.set(registry, found);
        }
        return found;
      };
      const context = (extra: Partial<ProbeContext>): ProbeContext => ({
        config: o.config,
        runner: o.runner,
        target: o.target,
        signal,
        log: new ProbeLog(),
        logger: o.logger,
        credentialFor: lookUp,
        ...extra,
      });
      const { probe, runner, target, config, intervalMs } = o;
      const result = await guardedProbe(o.harm, { config, runner, probe, target, intervalMs, signal, context, run: (ctx) => PROBES[probe](ctx) });
      if (used && !result.credential) {
        result.credential = { registry: used.path ?? used.registry, username: used.username, kind: used.kind, source: used.source, secretType: used.secretType };
      }
      o.sink.result(key, result);
    },
  };
}

/** The credential rows of SPEC.md's `credentials --json`, for /status. */
export function credentialViews(credentials: Credential[], jobTokenPaths: readonly string[] = []): CredentialView[] {
  return credentials.map((c) => credentialRow(c, jobTokenPaths));
}

/** Registries spoken to over TLS: their certificates are worth watching. */
export function tlsRegistries(config: Config, credentials: Map<string, Credential[]>, runners: Runner[]): string[] {
  const all = new Set<string>();
  for (const creds of credentials.values()) for (const c of creds) if (c.registry !== ANY_REGISTRY) all.add(c.registry);
  for (const r of runners) {
    for (const image of r.images) {
      try {
        all.add(parseImageRef(image).registry);
      } catch {
        // reported by plan()
      }
    }
  }
  return [...all].filter((r) => registryScheme(r, config.registries[r]) === "https");
}
