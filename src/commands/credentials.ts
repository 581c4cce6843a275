import type { Config } from "../config/load.js";
import { expandRunners, runnerCredentials } from "../credentials/index.js";
import { credentialRow } from "../credentials/format.js";
import type { Credential } from "../types.js";
import { table } from "./table.js";

/** Every credential each runner would use and where it is stored — never a secret. 0, or 2 on bad input. */
export async function credentialsCommand(config: Config, json: boolean): Promise<number> {
  const { runners, errors } = await expandRunners(config);
  const messages = errors.map((e) => e.message);
  const all: Credential[] = [];
  for (const runner of runners) {
    const creds = await runnerCredentials(runner, { signal: AbortSignal.timeout(config.helperTimeoutMs * 2 + 1000), helperTimeoutMs: config.helperTimeoutMs });
    for (const c of creds) {
      all.push(c);
      if (c.error) messages.push(c.error.message);
    }
  }
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
  return messages.length > 0 ? 2 : 0;
}
