import type { Config, GitlabConfig } from "../config/resolve.js";
import { expandRunners, runnerCredentials } from "../credentials/index.js";
import { withDeadline } from "../deadline.js";
import { credentialRow } from "../credentials/format.js";
import type { Credential } from "../types.js";
import { table } from "./table.js";

/**
 * Every credential each runner would use and where it is stored — never a
 * secret. With `gitlab:` configured, the kind comes from the Users API
 * (`personal` only when GitLab says a human owns it). 0, or 1 when a source could not be read.
 */
export async function credentialsCommand(config: Config, json: boolean): Promise<number> {
  const { runners, errors } = await expandRunners(config);
  const messages = errors.map((e) => e.message);
  let all: Credential[] = [];
  for (const runner of runners) {
    const helperTimeoutMs = config.helperTimeoutMs;
    const read = (signal: AbortSignal) => runnerCredentials(runner, { signal, helperTimeoutMs });
    const creds = await withDeadline(helperTimeoutMs * 2 + 1000, undefined, read);
    for (const c of creds) {
      all.push(c);
      if (c.error) messages.push(c.error.message);
    }
  }
  if (config.gitlab) all = await withOwnerKinds(config, config.gitlab, all, messages);
  if (json) {
    process.stdout.write(`${JSON.stringify(all.map(credentialRow), null, 2)}\n`);
  } else {
    process.stdout.write(
      table(
        ["RUNNER", "REGISTRY", "USERNAME", "KIND", "SECRET", "SOURCE"],
        all.map((c) => [c.runner, c.registry, c.username || "-", c.kind, c.error ? `error: ${c.error.reason}` : c.secretType, c.source]),
      ),
    );
  }
  for (const m of messages) process.stderr.write(`ci-prober: ${m}\n`);
  // A source that could not be read is a finding (exit 1); exit 2 is for ci-prober's own config, in main().
  return messages.length > 0 ? 1 : 0;
}

async function withOwnerKinds(config: Config, gitlab: GitlabConfig, creds: Credential[], messages: string[]): Promise<Credential[]> {
  const [{ GitlabClient }, { checkCredential }] = await Promise.all([import("../gitlab/client.js"), import("../probes/credential-check.js")]);
  const client = new GitlabClient({ url: gitlab.url, ...(gitlab.token ? { token: gitlab.token } : {}), ...(gitlab.ca !== undefined ? { ca: gitlab.ca } : {}) });
  try {
    return await Promise.all(
      creds.map(async (c) => {
        if (c.error) return c;
        const check = await withDeadline(config.timeoutMs, undefined, (signal) => checkCredential(client, c, signal));
        if (check.error) messages.push(`${gitlab.url}: owner of ${c.source}: ${check.error.message}`);
        return { ...c, kind: check.kind };
      }),
    );
  } finally {
    await client.close();
  }
}
