import { embeddedDefault } from "../config/discover.js";
import { loadConfigFile } from "../config/read.js";
import { EMBEDDED_DEFAULT, type Config } from "../config/resolve.js";
import { withDeadline } from "../deadline.js";
import { oneLine } from "../errors.js";
import { startServer, type HttpServer } from "../http/server.js";
import { StatusStore } from "../http/status.js";
import type { Logger } from "../log.js";
import { Metrics } from "../metrics/index.js";
import { plan, type Plan } from "../plan.js";
import { HeldStore } from "../gitlab/held.js";
import { NoHarm } from "../probes/guard.js";
import { Scheduler, type Task } from "../scheduler.js";
import { KeySet, probeLabel, taskKey, type TaskKey } from "../task-key.js";
import type { Runner } from "../types.js";
import { daemonSink } from "./sink.js";
import { PlanState } from "./state.js";

export interface Daemon {
  server: HttpServer;
  metrics: Metrics;
  status: StatusStore;
  /** Resolves once every task of the first plan has run. */
  firstRound: Promise<void>;
  /**
   * Re-read the config file and re-plan with it in place: the HTTP server,
   * the counters and the /status history of targets that still exist stay. A
   * config that does not load is logged, the running one stays, and this
   * rejects with the one-line error.
   */
  reload(): Promise<void>;
  stop(): Promise<void>;
}

/** The daemon's own task: re-read runners and credentials every interval. */
export const REPLAN_KEY: TaskKey = taskKey("replan", "", "");

/**
 * The long-running prober: re-plans every interval (config.toml and
 * config.json are re-read, so a fixed credential is seen without a restart),
 * keeps the scheduler in step with the plan, and serves HTTP.
 */
export interface DaemonOptions {
  /** How a reload reads the config again (run adds --web.config.file); by default the file is read as at start. */
  reread?: (current: Config) => Promise<Config>;
}

export async function startDaemon(initial: Config, logger: Logger, opts: DaemonOptions = {}): Promise<Daemon> {
  let config = initial;
  const metrics = new Metrics();
  const status = new StatusStore();
  status.configFile = config.file;
  const first = new FirstRound(logger);
  const scheduler = new Scheduler({
    concurrency: config.concurrency,
    logger,
    onSkip: (task) => metrics.recordSkip(task.key, skipLabels(task.key)),
    onRunEnd: (key) => first.ran(key),
  });
  const state = new PlanState(metrics, status, scheduler, logger);
  const sink = daemonSink(metrics, status, logger, state, state);
  const stopping = new AbortController();
  // Backoff, shared results and pull states outlive each plan and each reload: neither may forget a refused secret.
  const harm = new NoHarm(config);
  // The last crawl of DOCKER_AUTH_CONFIG held in GitLab: its holders are planned as runners.
  const held = new HeldStore();
  harm.onRateLimit = (registry, rateLimit) => metrics.setRateLimit(registry, rateLimit);
  harm.onGitlabRequest = (endpoint, code) => metrics.countGitlabRequest(endpoint, code);
  let runners: Runner[] = [];
  // Re-plans run one at a time, whether the scheduler's task or a reload started them.
  let serial: Promise<unknown> = Promise.resolve();
  const oneAtATime = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = serial.then(fn);
    serial = next.catch(() => undefined);
    return next;
  };

  const replanOnce = async (signal: AbortSignal): Promise<Plan | undefined> => {
    const p = await plan({ config, logger, sink, signal, checks: true, harm, held });
    if (stopping.signal.aborted) return undefined;
    state.apply(p, [replanTask()]);
    first.planned(new KeySet(p.tasks.map((t) => t.key)));
    runners = p.runners;
    logger.debug({ tasks: p.tasks.length }, "re-planned");
    return p;
  };
  const replanTask = (): Task => ({
    key: REPLAN_KEY,
    intervalMs: config.intervalMs,
    // The plan before it is fresh: the first re-plan is one interval later.
    firstRunMs: config.intervalMs,
    timeoutMs: planTimeoutMs(config),
    run: async (signal) => {
      try {
        await oneAtATime(() => replanOnce(signal));
      } catch (err) {
        if (!stopping.signal.aborted) logger.error({ error: oneLine(err) }, "re-plan failed");
      }
    },
  });

  const server = await startServer({
    listenAddress: config.listenAddress,
    metrics,
    status,
    ready: () => first.done,
    reload: () => reload(),
    logger,
    ...(config.webConfigFile !== undefined ? { webConfigFile: config.webConfigFile } : {}),
  });
  logger.info({ address: server.address, config: config.file, tls: server.tls, web_config: config.webConfigFile ?? null }, "listening");

  const firstPlan = await withDeadline(planTimeoutMs(config), undefined, (signal) =>
    plan({ config, logger, sink, signal, checks: true, harm, held }),
  );
  if (firstPlan.runners.length === 0)
    logger.warn({ config: config.file }, "no runners to probe: no gitlab-runner config.toml or Docker config.json found");
  // Containers a crashed prober left behind go before this one starts its own.
  await removeLeftoverCanaries(canaryEngines(config, firstPlan.runners), logger);
  runners = firstPlan.runners;
  first.planned(new KeySet(firstPlan.tasks.map((t) => t.key)));
  state.apply(firstPlan, [replanTask()]);

  async function reload(): Promise<void> {
    const next = await readConfigAgain(config, opts.reread ?? rereadFile, logger, metrics);
    await oneAtATime(async () => {
      warnFixedAtStart(config, next, logger);
      config = next;
      const p = await withDeadline(planTimeoutMs(next), stopping.signal, replanOnce);
      metrics.configLoaded(true);
      logger.info({ config: next.file, tasks: p?.tasks.length ?? 0 }, "config reloaded");
    });
  }

  return {
    server,
    metrics,
    status,
    firstRound: first.promise,
    reload,
    async stop() {
      stopping.abort();
      first.cancel();
      await scheduler.stop();
      await removeLeftoverCanaries(canaryEngines(config, runners), logger);
      await server.close();
      logger.info({}, "stopped");
    },
  };
}

/** A plan reads files and runs credential helpers: it gets twice the longer of the two deadlines. */
function planTimeoutMs(config: Config): number {
  return Math.max(config.timeoutMs, config.helperTimeoutMs) * 2;
}

async function rereadFile(current: Config): Promise<Config> {
  return current.file === EMBEDDED_DEFAULT ? embeddedDefault() : loadConfigFile(current.file);
}

/** The config read again, or the one-line error (logged, and ci_prober_config_last_reload_successful 0). */
async function readConfigAgain(current: Config, reread: (c: Config) => Promise<Config>, logger: Logger, metrics: Metrics): Promise<Config> {
  try {
    return await reread(current);
  } catch (err) {
    metrics.configLoaded(false);
    logger.error({ config: current.file, error: oneLine(err) }, "config reload failed; keeping the running config");
    throw err;
  }
}

/** The listener and the slot count are the process's: a reload cannot move them, and says so. */
function warnFixedAtStart(current: Config, next: Config, logger: Logger): void {
  for (const [key, was, now] of [
    ["listen_address", current.listenAddress, next.listenAddress],
    ["concurrency", current.concurrency, next.concurrency],
    ["web_config_file", current.webConfigFile ?? "", next.webConfigFile ?? ""],
  ] as const) {
    if (was !== now) logger.warn({ key, running: was, configured: now }, "setting takes effect at restart");
  }
}

/**
 * Readiness: every task of the first plan has finished one run (a task that a
 * later plan dropped no longer counts). Fed by the scheduler's run-end hook.
 */
class FirstRound {
  done = false;
  readonly promise: Promise<void>;
  #resolve: () => void = () => undefined;
  #pending: KeySet | undefined;
  readonly #ran = new KeySet();

  constructor(private readonly logger: Logger) {
    this.promise = new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  /** The tasks of the latest plan; before the first round is done, only those still wait. */
  planned(keys: KeySet): void {
    if (this.done) return;
    if (!this.#pending) this.#pending = new KeySet(keys.keys().filter((k) => !this.#ran.has(k)));
    else for (const k of this.#pending.keys()) if (!keys.has(k)) this.#pending.delete(k);
    this.#check();
  }

  ran(key: TaskKey): void {
    if (this.done) return;
    this.#ran.add(key);
    this.#pending?.delete(key);
    this.#check();
  }

  cancel(): void {
    this.#finish();
  }

  #check(): void {
    if (this.#pending && this.#pending.size === 0) {
      this.logger.info({}, "first round done");
      this.#finish();
    }
  }

  #finish(): void {
    this.done = true;
    this.#resolve();
  }
}

/** The labels of ci_prober_probe_skipped_total: the probe label, or "check" / "tls" for the daemon's checks. */
function skipLabels(key: TaskKey): { probe: string; runner: string; target: string } {
  const probe = probeLabel(key.kind) ?? (key.kind === "credential_check" ? "check" : key.kind === "certificate_check" ? "tls" : key.kind);
  return { probe, runner: key.runner, target: key.target };
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
  const { removeCanaryContainers } = await import("../engine/container.js");
  await Promise.all(
    runners.map(async (r) => {
      try {
        const remove = (signal: AbortSignal) => removeCanaryContainers(r.dockerHost, signal, r.tlsCertPath);
        const removed = await withDeadline(15_000, undefined, remove);
        if (removed > 0) logger.info({ docker_host: r.dockerHost, removed }, "removed leftover canary containers");
      } catch (err) {
        logger.warn({ docker_host: r.dockerHost, error: oneLine(err) }, "could not remove canary containers");
      }
    }),
  );
}
