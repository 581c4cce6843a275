import type { Config, GitlabConfig } from "../config/resolve.js";
import { expandRunners, runnerCredentials } from "../credentials/index.js";
import { credentialRow, rowNote, type CredentialRow } from "../credentials/format.js";
import { withDeadline } from "../deadline.js";
import { cachedImagePolicy } from "../credentials/pull-policy.js";
import type { GitlabClient } from "../gitlab/client.js";
import type { Credential, Runner } from "../types.js";
import { table } from "./table.js";

export interface CredentialsOptions {
  json: boolean;
  /** Add the DOCKER_AUTH_CONFIG values GitLab holds as CI/CD variables (`gitlab.variables`). */
  gitlab: boolean;
}

/**
 * Every credential each runner holds and where it is stored — never a secret —,
 * which one is in use and what it shadows. With `gitlab:` configured, the kind
 * comes from the Users API (`personal` only when GitLab says a human owns it)
 * and the job token's registries are known. 0, or 1 when a source could not be read.
 */
export async function credentialsCommand(config: Config, opts: CredentialsOptions): Promise<number> {
  const { runners, errors } = await expandRunners(config);
  const messages = errors.map((e) => e.message);
  const client = config.gitlab ? await gitlabClient(config.gitlab) : undefined;
  try {
    const jobTokenPaths = config.gitlab && client ? await learnJobTokenPaths(config, config.gitlab, client) : [];
    let all: Credential[] = [];
    for (const runner of runners) {
      const helperTimeoutMs = config.helperTimeoutMs;
      const read = (signal: AbortSignal) => runnerCredentials(runner, { signal, helperTimeoutMs, jobTokenPaths });
      const creds = await withDeadline(helperTimeoutMs * 2 + 1000, undefined, read);
      for (const c of creds) {
        all.push(c);
        if (c.error) messages.push(c.error.message);
      }
    }
    if (opts.gitlab) all.push(...(await gitlabHeld(config, client, jobTokenPaths, messages)));
    if (config.gitlab && client) all = await withOwnerKinds(config, config.gitlab, client, all, messages);
    const rows = all.map((c) => credentialRow(c, jobTokenPaths));
    if (opts.json)
      process.stdout.write(
        `${JSON.stringify(
          rows.map((r) => withPolicy(r, runners)),
          null,
          2,
        )}\n`,
      );
    else process.stdout.write(render(rows, runners));
  } finally {
    await client?.close();
  }
  for (const m of messages) process.stderr.write(`ci-prober: ${m}\n`);
  // A source that could not be read is a finding (exit 1); exit 2 is for ci-prober's own config, in main().
  return messages.length > 0 ? 1 : 0;
}

function render(rows: CredentialRow[], runners: Runner[]): string {
  const lines = table(
    ["RUNNER", "REGISTRY", "USERNAME", "KIND", "SECRET", "IN USE", "SOURCE"],
    rows.map((r) => [
      r.runner,
      r.registry,
      r.username || "-",
      r.environment_scope !== undefined && r.environment_scope !== "*" ? `${r.kind} (env ${r.environment_scope})` : r.kind,
      r.reason ? `error: ${r.reason}` : r.secret_type,
      r.in_use ? "yes" : "no",
      `${r.source}${rowNote(r)}`,
    ]),
  );
  const notes = runners.flatMap((r) => {
    const policy = cachedImagePolicy(r);
    return policy ? [`runner ${r.name}: ${policy}\n`] : [];
  });
  return notes.length > 0 ? `${lines}\n${notes.join("")}` : lines;
}

/** A runner whose pull policy hides broken credentials says so on each of its rows. */
function withPolicy(row: CredentialRow, runners: Runner[]): CredentialRow & { latent_failures?: string } {
  const runner = runners.find((r) => r.name === row.runner);
  const policy = runner ? cachedImagePolicy(runner) : undefined;
  return policy ? { ...row, latent_failures: policy } : row;
}

async function gitlabClient(gitlab: GitlabConfig): Promise<GitlabClient> {
  const { GitlabClient } = await import("../gitlab/client.js");
  return new GitlabClient({
    url: gitlab.url,
    ...(gitlab.token ? { token: gitlab.token } : {}),
    ...(gitlab.ca !== undefined ? { ca: gitlab.ca } : {}),
  });
}

async function learnJobTokenPaths(config: Config, gitlab: GitlabConfig, client: GitlabClient): Promise<string[]> {
  const { jobTokenPaths } = await import("../gitlab/job-token.js");
  return withDeadline(config.timeoutMs, undefined, (signal) => jobTokenPaths(gitlab, () => client, signal));
}

/** The credentials GitLab holds in DOCKER_AUTH_CONFIG variables (`gitlab.variables`), each marked in use or shadowed. */
async function gitlabHeld(
  config: Config,
  client: GitlabClient | undefined,
  jobTokenPaths: string[],
  messages: string[],
): Promise<Credential[]> {
  if (!config.gitlab || !client) {
    messages.push(
      `${config.file}: --gitlab needs a gitlab: section (url, token_file) to read the DOCKER_AUTH_CONFIG variables GitLab holds`,
    );
    return [];
  }
  const { gitlabHeldCredentials } = await import("../gitlab/held.js");
  const gitlab = config.gitlab;
  // A crawl is many requests under the API budget: it gets a deadline of its own, far longer than one probe's.
  const held = await withDeadline(Math.max(config.timeoutMs * 20, 10 * 60_000), undefined, (signal) =>
    gitlabHeldCredentials(client, gitlab, { signal, helperTimeoutMs: config.helperTimeoutMs, jobTokenPaths }),
  );
  messages.push(...held.errors);
  for (const c of held.credentials) if (c.error) messages.push(c.error.message);
  return held.credentials;
}

async function withOwnerKinds(
  config: Config,
  gitlab: GitlabConfig,
  client: GitlabClient,
  creds: Credential[],
  messages: string[],
): Promise<Credential[]> {
  const { checkCredential } = await import("../probes/credential-check.js");
  return Promise.all(
    creds.map(async (c) => {
      if (c.error || c.secret === undefined) return c;
      const check = await withDeadline(config.timeoutMs, undefined, (signal) => checkCredential(client, c, signal));
      if (check.error) messages.push(`${gitlab.url}: owner of ${c.source}: ${check.error.message}`);
      return { ...c, kind: check.kind };
    }),
  );
}
