import type { Config } from "./config/load.js";
import { oneLine } from "./errors.js";
import type { Logger } from "./log.js";
import { Metrics } from "./metrics.js";
import { credentialViews, daemonSink, plan } from "./prober.js";
import { Scheduler } from "./scheduler.js";
import { startServer, type HttpServer } from "./server.js";
import { StatusStore } from "./status.js";
import type { Credential, CredentialKind, Runner } from "./types.js";

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
  // Kinds the Users API established ("personal" only when GitLab says a human owns it) override the username's form.
  const kinds = new Map<string, CredentialKind>();
  const credentials = new Map<string, Credential[]>();
  const withKinds = (creds: Credential[]) => creds.map((c) => ({ ...c, kind: kinds.get(`${c.runner}|${c.registry}|${c.username}`) ?? c.kind }));
  const sink = daemonSink(metrics, status, logger, (check) => {
    if (check.error || check.kind === "unknown") return;
    kinds.set(`${check.runner}|${check.registry}|${check.username}`, check.kind);
    const creds = credentials.get(check.runner);
    if (creds) metrics.setCredentials(check.runner, withKinds(creds));
  });
  const stopping = new AbortController();
  let firstKeys: string[] | undefined;
  let ready = false;
  const server = await startServer({ listenAddress: config.listenAddress, metrics, status, ready: () => ready });
  logger.info({ address: server.address, config: config.file }, "listening");

  let knownRunners = new Set<string>();
  let lastRunners: Runner[] = [];
  let engineHosts: Runner[] = [];
  const replan = async () => {
    const signal = AbortSignal.any([stopping.signal, AbortSignal.timeout(Math.max(config.timeoutMs, config.helperTimeoutMs) * 2)]);
    const p = await plan({ config, logger, sink, signal, checks: true });
    if (stopping.signal.aborted) return;
    status.setRunners(p.runners, new Map([...p.credentials].map(([name, creds]) => [name, credentialViews(withKinds(creds))])));
    if (p.errors.join("\n") !== status.inputErrors.join("\n")) {
      for (const e of p.errors) logger.error({ error: e }, "bad input");
    }
    status.inputErrors = p.errors;
    const names = new Set(p.runners.map((r) => r.name));
    credentials.clear();
    for (const [name, creds] of p.credentials) {
      credentials.set(name, creds);
      metrics.setCredentials(name, withKinds(creds));
    }
    for (const gone of knownRunners) {
      if (names.has(gone)) continue;
      metrics.drop(`credentials|${gone}`);
      for (const owner of metrics.owners(`owner|${gone}|`)) metrics.drop(owner);
      logger.info({ runner: gone }, "runner removed");
    }
    knownRunners = names;
    lastRunners = p.runners;
    const { removed, added } = scheduler.sync(p.tasks);
    for (const key of removed) metrics.drop(key);
    for (const [name, creds] of p.credentials) {
      const held = new Set(creds.map((c) => `owner|${name}|${c.registry}`));
      for (const owner of metrics.owners(`owner|${name}|`)) if (!held.has(owner)) metrics.drop(owner);
    }
    status.retain(new Set(p.tasks.map((t) => t.key)));
    if (added.length > 0 || removed.length > 0) logger.info({ added: added.length, removed: removed.length, tasks: p.tasks.length }, "plan updated");
    if (firstKeys === undefined && p.runners.length === 0) {
      logger.warn({ config: config.file }, "no runners to probe: no gitlab-runner config.toml or Docker config.json found");
    }
    firstKeys ??= p.tasks.map((t) => t.key);
  };

  await replan();
  engineHosts = canaryEngines(config, lastRunners);
  await removeLeftoverCanaries(engineHosts, logger);
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
      await removeLeftoverCanaries(engineHosts, logger);
      await server.close();
      logger.info({}, "stopped");
    },
  };
}

/** One engine-mode runner per Docker engine that runs local canaries. */
function canaryEngines(config: Config, runners: Runner[]): Runner[] {
  if (!config.canary.local) return [];
  const byHost = new Map<string, Runner>();
  for (const r of runners) if (r.mode === "engine" && !byHost.has(r.dockerHost)) byHost.set(r.dockerHost, r);
  return [...byHost.values()];
}

/** Canary containers left by a crashed prober (or by this one, at shutdown) are removed; failure is logged, not fatal. */
async function removeLeftoverCanaries(runners: Runner[], logger: Logger): Promise<void> {
  if (runners.length === 0) return;
  const { removeCanaryContainers } = await import("./engine/container.js");
  await Promise.all(
    runners.map(async (r) => {
      try {
        const removed = await removeCanaryContainers(r.dockerHost, AbortSignal.timeout(15_000), r.tlsCertPath);
        if (removed > 0) logger.info({ docker_host: r.dockerHost, removed }, "removed leftover canary containers");
      } catch (err) {
        logger.warn({ docker_host: r.dockerHost, error: oneLine(err) }, "could not remove canary containers");
      }
    }),
  );
}
