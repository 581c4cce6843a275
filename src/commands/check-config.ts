import { EMBEDDED_DEFAULT, type Config } from "../config/resolve.js";
import { expandRunners, runnerCredentials } from "../credentials/index.js";
import { withDeadline } from "../deadline.js";
import { formatDuration } from "../duration.js";
import { checkWebConfig } from "../http/web-server.js";
import type { WebConfig } from "../http/web-config.js";
import { silentLogger } from "../log.js";
import { table } from "./table.js";

/** Validate the config and the files it points at; print the resolved runners. 0 valid, 1 a runner's own file could not be read. */
export async function checkConfigCommand(config: Config): Promise<number> {
  // A broken web config is ci-prober's own config: its WebConfigError is an InputError, exit 2.
  const web = config.webConfigFile !== undefined ? await checkWebConfig(config.webConfigFile, silentLogger) : undefined;
  const { runners, errors } = await expandRunners(config);
  const messages = errors.map((e) => e.message);
  for (const runner of runners) {
    const helperTimeoutMs = config.helperTimeoutMs;
    const read = (signal: AbortSignal) => runnerCredentials(runner, { signal, helperTimeoutMs });
    const creds = await withDeadline(helperTimeoutMs * 2 + 1000, undefined, read);
    for (const c of creds) if (c.error) messages.push(c.error.message);
  }
  const source = config.file === EMBEDDED_DEFAULT ? "embedded default (runners discovered on this host)" : config.file;
  const schedule = config.schedule !== undefined ? `schedule "${config.schedule}"` : `every ${formatDuration(config.intervalMs)}`;
  process.stdout.write(
    `config: ${source}\nprobes: ${schedule}, timeout ${formatDuration(config.timeoutMs)}, concurrency ${config.concurrency}, listen ${config.listenAddress}\n` +
      (web && config.webConfigFile !== undefined ? `web config: ${config.webConfigFile} (${webSummary(web)})\n` : "") +
      "\n",
  );
  process.stdout.write(
    table(
      ["RUNNER", "MODE", "DOCKER_HOST", "DOCKER_CONFIG", "IMAGES", "SOURCE"],
      runners.map((r) => [r.name, r.mode, r.dockerHost, r.dockerConfig ?? "-", r.images.join(",") || "-", r.source]),
    ),
  );
  for (const m of messages) process.stderr.write(`ci-prober: ${m}\n`);
  // ci-prober's own config was valid (main() exits 2 otherwise): a runner's unreadable file is exit 1.
  return messages.length > 0 ? 1 : 0;
}

function webSummary(web: WebConfig): string {
  const tls = web.tls ? `TLS, client certificates: ${web.tls.clientAuth}` : "plain HTTP";
  const users = web.users.size === 0 ? "no basic auth" : `basic auth: ${web.users.size} user${web.users.size === 1 ? "" : "s"}`;
  return `${tls}, ${users}`;
}
