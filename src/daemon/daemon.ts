import type { Config } from "../config/resolve.js";
import { withDeadline } from "../deadline.js";
import { oneLine } from "../errors.js";
import type { Logger } from "../log.js";
import { Metrics } from "../metrics/index.js";
import type { CredentialCheck } from "../probes/credential-check.js";
import { credentialViews, plan, type Plan } from "../plan.js";
import { daemonSink } from "./sink.js";
import { NoHarm } from "../probes/guard.js";
import { Scheduler } from "../scheduler.js";
import { startServer, type HttpServer } from "../http/server.js";
import { StatusStore } from "../http/status.js";
import type { Credential, CredentialKind, Runner } from "../types.js";
import { HeldStore } from "../gitlab/held.js";

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
  const scheduler = new Scheduler({ concurrency: config.concurrency, logger, onSkip: (task) => metrics.recordSkip(task.key, skipLabels(task.key)) });
  const state = new PlanState(metrics, status, scheduler, logger);
  const recorded = daemonSink(metrics, status, logger, { learn: (check) => state.learnKind(check), of: (c) => state.kindOf(c) });
  // A run still in flight when a re-plan removed its task would bring back the series just dropped, for good.
  const sink: typeof recorded = { ...recorded, result: (key, r) => (state.planned(key) ? recorded.result(key, r) : undefined) };
  const stopping = new AbortController();
  // Backoff, shared results and pull states outlive each plan: a re-plan must not forget a refused secret.
  const harm = new NoHarm(config);
  const held = new HeldStore();
  harm.onRateLimit = (registry, rateLimit) => metrics.setRateLimit(registry, rateLimit);
  harm.onGitlabRequest = (endpoint, code) => metrics.countGitlabRequest(endpoint, code);
  let ready = false;
  const server = await startServer({
    listenAddress: config.listenAddress,
    metrics,
    status,
    ready: () => ready,
    logger,
    ...(config.webConfigFile !== undefined ? { webConfigFile: config.webConfigFile } : {}),
  });
  logger.info({ address: server.address, config: config.file, tls: server.tls, web_config: config.webConfigFile ?? null }, "listening");

  const replan = async () => {
    const planMs = Math.max(config.timeoutMs, config.helperTimeoutMs) * 2;
    const p = await withDeadline(planMs, stopping.signal, (signal) => plan({ config, logger, sink, signal, checks: true, harm, held }));
    if (!stopping.signal.aborted) state.apply(p);
  };

  const planMs = Math.max(config.timeoutMs, config.helperTimeoutMs) * 2;
  const first = await withDeadline(planMs, undefined, (signal) => plan({ config, logger, sink, signal, checks: true, harm, held }));
  if (first.runners.length === 0) logger.warn({ config: config.file }, "no runners to probe: no gitlab-runner config.toml or Docker config.json found");
  // Containers a crashed prober left behind go before this one starts its own.
  const engines = canaryEngines(config, first.runners);
  await removeLeftoverCanaries(engines, logger);
  state.apply(first);
  const firstKeys = first.tasks.map((t) => t.key);
  const firstRound = new Promise<void>((resolve) => {
    const check = setInterval(() => {
      if (stopping.signal.aborted || firstKeys.every((k) => scheduler.runsOf(k) > 0 || !scheduler.keys().includes(k))) {
        clearInterval(check);
        ready = true;
        logger.info({}, "first round done");
        resolve();
      }
    }, 100);
  });
  const replanTimer = setInterval(() => {
    replan().catch((err: unknown) => {
      // Stopping aborts a re-plan in flight: that is the stop working, not a failure.
      if (!stopping.signal.aborted) logger.error({ error: oneLine(err) }, "re-plan failed");
    });
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
      await removeLeftoverCanaries(engines, logger);
      await server.close();
      logger.info({}, "stopped");
    },
  };
}

/**
 * What the daemon keeps between plans: the runners it knows, their
 * credentials, and the kinds the Users API established. Applying a plan
 * updates /status and credential_info, syncs the scheduler, and drops the
 * series of whatever vanished.
 */
class PlanState {
  readonly #kinds = new Map<string, CredentialKind>();
  #credentials = new Map<string, Credential[]>();
  #jobTokenPaths: string[] = [];
  #runners = new Set<string>();
  #errors = "";
  #planned = new Set<string>();

  constructor(
    private readonly metrics: Metrics,
    private readonly status: StatusStore,
    private readonly scheduler: Scheduler,
    private readonly logger: Logger,
  ) {}

  /** "personal" only when GitLab says a human owns it: a kind from the Users API overrides the username's form. */
  learnKind(check: CredentialCheck): void {
    if (check.error || check.kind === "unknown") return;
    this.#kinds.set(`${check.runner}|${check.registry}|${check.username}`, check.kind);
    const creds = this.#credentials.get(check.runner);
    if (creds) this.metrics.setCredentials(check.runner, this.#withKinds(creds), this.#jobTokenPaths);
  }

  apply(p: Plan): void {
    const { metrics, status, logger } = this;
    status.setRunners(p.runners, new Map([...p.credentials].map(([name, creds]) => [name, credentialViews(this.#withKinds(creds), p.jobTokenPaths)])));
    // A runner's broken config.json, helper or config.toml is what the prober is there to find: a finding, not an error of its own.
    if (p.errors.join("\n") !== this.#errors) for (const e of p.errors) logger.warn({ error: e }, "runner source unusable");
    this.#errors = p.errors.join("\n");
    status.inputErrors = p.errors;
    status.gitlabVariables = p.gitlabVariables;
    this.#credentials = p.credentials;
    this.#jobTokenPaths = p.jobTokenPaths;
    for (const [name, creds] of p.credentials) {
      metrics.setCredentials(name, this.#withKinds(creds), p.jobTokenPaths);
      const held = new Set(creds.map((c) => `owner|${name}|${c.path ?? c.registry}`));
      for (const owner of metrics.owners(`owner|${name}|`)) if (!held.has(owner)) metrics.drop(owner);
    }
    const names = new Set(p.runners.map((r) => r.name));
    for (const gone of this.#runners) {
      if (names.has(gone)) continue;
      metrics.drop(`credentials|${gone}`);
      for (const owner of metrics.owners(`owner|${gone}|`)) metrics.drop(owner);
      logger.info({ runner: gone }, "runner removed");
    }
    this.#runners = names;
    this.#planned = new Set(p.tasks.map((t) => t.key));
    // A registry no task talks to any more takes its rate-limit gauges with it.
    const groups = new Set(p.tasks.map((t) => t.group));
    for (const owner of metrics.owners("ratelimit|")) if (!groups.has(owner.slice("ratelimit|".length))) metrics.drop(owner);
    const { removed, added } = this.scheduler.sync(p.tasks);
    for (const key of removed) metrics.drop(key);
    status.retain(new Set(p.tasks.map((t) => t.key)));
    if (added.length > 0 || removed.length > 0) logger.info({ added: added.length, removed: removed.length, tasks: p.tasks.length }, "plan updated");
  }

  /** A task of the plan in force: only its results are recorded. */
  planned(key: string): boolean {
    return this.#planned.has(key);
  }

  kindOf(c: Pick<Credential, "runner" | "registry" | "username" | "kind">): CredentialKind {
    return this.#kinds.get(`${c.runner}|${c.registry}|${c.username}`) ?? c.kind;
  }

  #withKinds(creds: Credential[]): Credential[] {
    return creds.map((c) => ({ ...c, kind: this.kindOf({ ...c, registry: c.path ?? c.registry }) }));
  }
}

/** The labels of ci_prober_probe_skipped_total from a task key "probe|runner|target" ("check|runner", "tls|registry" for the checks). */
function skipLabels(key: string): { probe: string; runner: string; target: string } {
  const [probe = "", runner = "", ...rest] = key.split("|");
  if (rest.length === 0) return probe === "tls" ? { probe, runner: "", target: runner } : { probe, runner, target: "" };
  return { probe, runner, target: rest.join("|") };
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
