import type { Config } from "./config/load.js";
import { oneLine } from "./errors.js";
import type { Logger } from "./log.js";
import { Metrics } from "./metrics.js";
import { credentialViews, daemonSink, plan } from "./prober.js";
import { Scheduler } from "./scheduler.js";
import { startServer, type HttpServer } from "./server.js";
import { StatusStore } from "./status.js";

export interface Daemon {
  server: HttpServer;
  metrics: Metrics;
  status: StatusStore;
  /** Resolves once every task of the first plan has run. */
  firstRound: Promise<void>;
  stop(): Promise<void>;
}

/**
 * The long-running prober: re-plans every interval (config.toml and
 * config.json are re-read, so a fixed credential is seen without a restart),
 * keeps the scheduler in step with the plan, and serves HTTP.
 */
export async function startDaemon(config: Config, logger: Logger): Promise<Daemon> {
  const metrics = new Metrics();
  const status = new StatusStore();
  status.configFile = config.file;
  const scheduler = new Scheduler({ concurrency: config.concurrency, logger });
  const sink = daemonSink(metrics, status, logger);
  const stopping = new AbortController();
  let firstKeys: string[] | undefined;
  let ready = false;
  const server = await startServer({ listenAddress: config.listenAddress, metrics, status, ready: () => ready });
  logger.info({ address: server.address, config: config.file }, "listening");

  let knownRunners = new Set<string>();
  const replan = async () => {
    const signal = AbortSignal.any([stopping.signal, AbortSignal.timeout(Math.max(config.timeoutMs, config.helperTimeoutMs) * 2)]);
    const p = await plan({ config, logger, sink, signal });
    if (stopping.signal.aborted) return;
    status.setRunners(p.runners, new Map([...p.credentials].map(([name, creds]) => [name, credentialViews(creds)])));
    if (p.errors.join("\n") !== status.inputErrors.join("\n")) {
      for (const e of p.errors) logger.error({ error: e }, "bad input");
    }
    status.inputErrors = p.errors;
    const names = new Set(p.runners.map((r) => r.name));
    for (const [name, creds] of p.credentials) metrics.setCredentials(name, creds);
    for (const gone of knownRunners) {
      if (names.has(gone)) continue;
      metrics.drop(`credentials|${gone}`);
      for (const owner of metrics.owners(`owner|${gone}|`)) metrics.drop(owner);
      logger.info({ runner: gone }, "runner removed");
    }
    knownRunners = names;
    const { removed, added } = scheduler.sync(p.tasks);
    for (const key of removed) metrics.drop(key);
    status.retain(new Set(p.tasks.map((t) => t.key)));
    if (added.length > 0 || removed.length > 0) logger.info({ added: added.length, removed: removed.length, tasks: p.tasks.length }, "plan updated");
    firstKeys ??= p.tasks.map((t) => t.key);
  };

  await replan();
  const firstRound = new Promise<void>((resolve) => {
    const check = setInterval(() => {
      if (stopping.signal.aborted || (firstKeys ?? []).every((k) => scheduler.runsOf(k) > 0 || !scheduler.keys().includes(k))) {
        clearInterval(check);
        ready = true;
        logger.info({}, "first round done");
        resolve();
      }
    }, 100);
  });
  const replanTimer = setInterval(() => {
    replan().catch((err: unknown) => logger.error({ error: oneLine(err) }, "re-plan failed"));
  }, config.intervalMs);

  return {
    server,
    metrics,
    status,
    firstRound,
    async stop() {
      stopping.abort();
      clearInterval(replanTimer);
      await scheduler.stop();
      await server.close();
      logger.info({}, "stopped");
    },
  };
}
