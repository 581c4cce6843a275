import type { Config, GitlabCanaryConfig, GitlabConfig, LocalCanaryConfig } from "../config/resolve.js";
import { normalizeRegistry, parseImageRef } from "../image.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics/index.js";
import { registryScheme } from "../registry/client.js";
import type { Task } from "../scheduler.js";
import { taskKey, type TaskKey, type TaskKind } from "../task-key.js";
import type { CanaryJob, Credential, ProbeKind, ProbeResult, Runner } from "../types.js";
import type { CredentialCheck } from "./credential-check.js";
import type { RegistrySettings } from "./direct.js";
import { guardedProbe, type NoHarm } from "./guard.js";
import { fullPullIntervalFor } from "./pull-plan.js";
import { runProbe } from "./run.js";
import { ProbeLog, type ProbeContext } from "./types.js";

// The one list of probe kinds (blackbox's Probers map). Probe bodies are
// imported when first used: engine mode pulls in dockerode (~0.3 s, 30 MB),
// direct mode and GitLab undici, and a command pays only for what it runs.

/** One runner as plan() found it: its credentials, and the images and registries it probes. */
export interface RunnerFacts {
  runner: Runner;
  /** Usable and unusable alike (an unusable one is reported, not probed). */
  credentials: Credential[];
  /** Images that parse as references, in the order configured. */
  images: string[];
  /** Login targets: the registry (or registry path, for a path key) of each credential it holds, and its images' registries. */
  registries: string[];
}

export interface PlanInput {
  config: Config;
  runners: RunnerFacts[];
}

/** One task a kind wants: whom it probes, how often, and that kind's own settings. */
export interface Target<S> {
  runner: Runner;
  target: string;
  /** The far end (a registry host, a GitLab): tasks of one group never take every slot. */
  group: string;
  intervalMs: number;
  timeoutMs: number;
  schedule?: string;
  settings: S;
}

/** What a probe kind writes into the metrics from one of its results. */
export type SeriesWriter = (metrics: Metrics, key: TaskKey, result: ProbeResult) => void;

/** Where a task's result goes: metrics, /status and the log in the daemon; a list for `once`. */
export interface Sink {
  probe(key: TaskKey, result: ProbeResult, series: SeriesWriter): void;
  checks(key: TaskKey, checks: CredentialCheck[]): void;
  cert(key: TaskKey, registry: string, notAfterMs: number | undefined): void;
}

/** A probe kind: which targets it has in a plan, how to run one, and where its result goes. */
export interface ProbeKindDef<S, R> {
  kind: TaskKind;
  /** The credential and certificate checks are the daemon's; `once` runs only the probes. */
  daemonOnly: boolean;
  targets(input: PlanInput): Target<S>[];
  /** `harm` is the daemon's no-harm state: a GitLab probe takes its instance's request budget from it. */
  run(ctx: ProbeContext<S>, harm: NoHarm): Promise<R>;
  record(key: TaskKey, result: R, sink: Sink): void;
}

export interface TaskDeps {
  /** Only for the no-harm guard, which compares whole probes across runners; a probe itself sees its settings. */
  config: Config;
  harm: NoHarm;
  sink: Sink;
  logger: Logger;
  credentialFor(runner: Runner, registry: string, signal: AbortSignal): Promise<Credential | undefined>;
}

/** A kind with its settings and result types sealed in: plan() only asks it for tasks. */
export interface ProbeKindEntry {
  kind: TaskKind;
  daemonOnly: boolean;
  tasks(input: PlanInput, deps: TaskDeps): Task[];
}

function defineKind<S, R>(def: ProbeKindDef<S, R>): ProbeKindEntry {
  const tasks = (input: PlanInput, deps: TaskDeps) => def.targets(input).map((t) => taskOf(def, t, deps, (ctx) => def.run(ctx, deps.harm)));
  return { kind: def.kind, daemonOnly: def.daemonOnly, tasks };
}

/** A kind that talks to a registry with a runner's secret: it runs under the no-harm rules (guard.ts). */
function defineGuardedKind<S>(probe: ProbeKind, def: ProbeKindDef<S, ProbeResult>): ProbeKindEntry {
  const tasks = (input: PlanInput, deps: TaskDeps) =>
    def.targets(input).map((t) =>
      taskOf(def, t, deps, (ctx) =>
        guardedProbe<S>(deps.harm, {
          config: deps.config,
          runner: t.runner,
          probe,
          target: t.target,
          intervalMs: t.intervalMs,
          signal: ctx.signal,
          context: (extra) => ({ ...ctx, ...extra }),
          run: (c) => def.run(c, deps.harm),
        }),
      ),
    );
  return { kind: def.kind, daemonOnly: def.daemonOnly, tasks };
}

function taskOf<S, R>(def: ProbeKindDef<S, R>, t: Target<S>, deps: TaskDeps, run: (ctx: ProbeContext<S>) => Promise<R>): Task {
  const key = taskKey(def.kind, t.runner.name, t.target);
  return {
    key,
    intervalMs: t.intervalMs,
    timeoutMs: t.timeoutMs,
    group: t.group,
    ...(t.schedule !== undefined ? { schedule: t.schedule } : {}),
    async run(signal) {
      // One look-up per registry and run: the no-harm guard and the probe body see the same credential.
      const looked = new Map<string, Promise<Credential | undefined>>();
      const credentialFor = (registry: string) => {
        let found = looked.get(registry);
        if (found === undefined) {
          found = deps.credentialFor(t.runner, registry, signal);
          looked.set(registry, found);
        }
        return found;
      };
      const ctx: ProbeContext<S> = {
        settings: t.settings,
        runner: t.runner,
        target: t.target,
        signal,
        log: new ProbeLog(),
        logger: deps.logger,
        credentialFor,
      };
      def.record(key, await run(ctx), deps.sink);
    },
  };
}

/** The period, deadline and schedule a runner's probes run on. */
function runnerTiming(config: Config, runner: Runner): Pick<Target<unknown>, "intervalMs" | "timeoutMs" | "schedule"> {
  return {
    intervalMs: runner.intervalMs ?? config.intervalMs,
    timeoutMs: runner.timeoutMs ?? config.timeoutMs,
    ...(config.schedule !== undefined ? { schedule: config.schedule } : {}),
  };
}

export function registrySettings(config: Config, registry: string, runner: Pick<Runner, "fullPullIntervalMs"> = {}): RegistrySettings {
  const transport = config.registries[registry];
  const fullPullIntervalMs = fullPullIntervalFor(config, runner, registry);
  return {
    platform: transport?.platform ?? config.platform,
    ...(transport ? { transport } : {}),
    ...(fullPullIntervalMs !== undefined ? { fullPullIntervalMs } : {}),
  };
}

const login = defineGuardedKind<RegistrySettings>("login", {
  kind: "login",
  daemonOnly: false,
  targets: ({ config, runners }) =>
    runners.flatMap(({ runner, registries }) =>
      registries.map((target) => {
        // A path key (`registry.example.jp/team-a`) is tried at its host, with the host's transport.
        const registry = normalizeRegistry(target);
        return { runner, target, group: registry, ...runnerTiming(config, runner), settings: registrySettings(config, registry, runner) };
      }),
    ),
  run: (ctx) =>
    runProbe("login", ctx, async (c) =>
      c.runner.mode === "engine" ? (await import("./engine.js")).engineLogin(c) : (await import("./direct.js")).directLogin(c),
    ),
  record: (key, result, sink) => sink.probe(key, result, loginSeries),
});

export function loginSeries(m: Metrics, key: TaskKey, r: ProbeResult): void {
  m.recordRun(key, r);
  const labels = { runner: r.runner, registry: r.target };
  m.set(key, m.loginSuccess, labels, r.success ? 1 : 0);
  if (ran(r)) m.observe(key, m.loginDuration, labels, r.durationSeconds);
}

/** A result held by the auth-failure backoff sent nothing: it has no duration worth a histogram. */
function ran(r: ProbeResult): boolean {
  return r.backoff === undefined;
}

const pull = defineGuardedKind<RegistrySettings>("pull", {
  kind: "pull",
  daemonOnly: false,
  targets: ({ config, runners }) =>
    runners.flatMap(({ runner, images }) =>
      images.map((image) => {
        const registry = parseImageRef(image).registry;
        return {
          runner,
          target: image,
          group: registry,
          ...runnerTiming(config, runner),
          settings: registrySettings(config, registry, runner),
        };
      }),
    ),
  run: (ctx) =>
    runProbe("pull", ctx, async (c) =>
      c.runner.mode === "engine" ? (await import("./engine.js")).enginePull(c) : (await import("./direct.js")).directPull(c),
    ),
  record: (key, result, sink) => sink.probe(key, result, pullSeries),
});

export function pullSeries(m: Metrics, key: TaskKey, r: ProbeResult): void {
  m.recordRun(key, r);
  const labels = { runner: r.runner, image: r.target };
  m.set(key, m.pullSuccess, labels, r.success ? 1 : 0);
  if (ran(r)) m.observe(key, m.pullDuration, labels, r.durationSeconds);
  if (r.bytes !== undefined) m.setPullBytes(key, r.runner, r.target, r.pull ?? "full", r.bytes);
}

const localCanary = defineGuardedKind<LocalCanaryConfig>("canary", {
  kind: "local_canary",
  daemonOnly: false,
  targets: ({ config, runners }) => {
    const local = config.canary.local;
    if (!local) return [];
    const wanted = ({ runner }: RunnerFacts) =>
      runner.mode === "engine" && (local.runners === undefined || local.runners.includes(runner.name));
    return runners.filter(wanted).map(({ runner }) => {
      const timing = runnerTiming(config, runner);
      return {
        runner,
        target: "local",
        group: parseImageRef(local.image).registry,
        ...timing,
        intervalMs: local.intervalMs ?? timing.intervalMs,
        timeoutMs: local.timeoutMs ?? timing.timeoutMs,
        settings: local,
      };
    });
  },
  run: (ctx) => runProbe("canary", ctx, async (c) => (await import("./canary-local.js")).localCanary(c)),
  record: (key, result, sink) => sink.probe(key, result, localCanarySeries),
});

export function localCanarySeries(m: Metrics, key: TaskKey, r: ProbeResult): void {
  m.recordRun(key, r);
  const labels = { runner: r.runner, canary: r.target };
  m.set(key, m.canarySuccess, labels, r.success ? 1 : 0);
  if (ran(r)) m.observe(key, m.canaryDuration, labels, r.durationSeconds);
  if (r.queuedSeconds !== undefined) m.set(key, m.canaryQueued, labels, r.queuedSeconds);
}

/** The pseudo-runner the GitLab canary reports under before its jobs name the real runners. */
export function gitlabCanaryRunner(cfg: GitlabCanaryConfig): Runner {
  return {
    name: "gitlab",
    mode: "direct",
    source: `${cfg.url}/${cfg.project}`,
    dockerHost: "",
    images: [],
    timeoutMs: cfg.timeoutMs,
    intervalMs: cfg.intervalMs,
  };
}

const gitlabCanary = defineKind<GitlabCanaryConfig, ProbeResult>({
  kind: "gitlab_canary",
  daemonOnly: false,
  targets: ({ config }) => {
    const cfg = config.canary.gitlab;
    if (!cfg) return [];
    return [
      {
        runner: gitlabCanaryRunner(cfg),
        target: cfg.project,
        group: `gitlab|${cfg.url}`,
        intervalMs: cfg.intervalMs,
        // The canary cancels its pipeline at its own timeout; the task's deadline leaves room for that.
        timeoutMs: cfg.timeoutMs + 30_000,
        ...(cfg.schedule !== undefined ? { schedule: cfg.schedule } : {}),
        settings: cfg,
      },
    ];
  },
  run: async (ctx, harm) => (await import("./canary-gitlab.js")).gitlabCanary({ ...ctx, gitlabBudget: harm.gitlab.for(ctx.settings.url) }),
  record: (key, result, sink) => sink.probe(key, result, gitlabCanarySeries),
});

/**
 * A GitLab canary pipeline: one series per runner that ran a job ("none" for
 * jobs no runner picked, and for a pipeline that could not be created).
 */
export function gitlabCanarySeries(m: Metrics, key: TaskKey, result: ProbeResult): void {
  const canary = result.target;
  const finished = (result.startedAt + result.durationSeconds * 1000) / 1000;
  m.set(key, m.lastRun, { probe: "canary", runner: result.runner, target: canary }, finished);
  const byRunner = new Map<string, CanaryJob[]>();
  for (const job of result.jobs ?? []) {
    const runner = job.runner ?? "none";
    byRunner.set(runner, [...(byRunner.get(runner) ?? []), job]);
  }
  if (byRunner.size === 0) byRunner.set("none", []);
  for (const [runner, jobs] of byRunner) {
    const ok = jobs.length > 0 && jobs.every((j) => j.status === "success");
    const labels = { runner, canary };
    m.set(key, m.canarySuccess, labels, ok ? 1 : 0);
    const duration = jobs.length > 0 ? Math.max(0, ...jobs.map((j) => j.durationSeconds ?? 0)) : result.durationSeconds;
    m.observe(key, m.canaryDuration, labels, duration);
    m.set(key, m.canaryQueued, labels, Math.max(0, ...jobs.map((j) => j.queuedSeconds ?? 0)));
    m.set(key, m.lastRun, { probe: "canary", runner, target: canary }, Date.now() / 1000);
    if (!ok) m.countFailure(key, { probe: "canary", runner, target: canary, reason: result.reason ?? "pipeline_failed" });
  }
}

interface CheckSettings {
  gitlab: GitlabConfig;
  /** The runner's usable credentials for this task's registry. */
  credentials: Credential[];
}

const credentialCheck = defineKind<CheckSettings, CredentialCheck[]>({
  kind: "credential_check",
  daemonOnly: true,
  targets: ({ config, runners }) => {
    const gitlab = config.gitlab;
    if (!gitlab) return [];
    return runners.flatMap(({ runner, credentials }) => {
      // Owner facts are keyed by the path the key names, as credential_info is: a path key and its host are two credentials.
      const usable = credentials.filter((c) => !c.error && c.secret !== undefined).map((c) => ({ ...c, registry: c.path ?? c.registry }));
      return [...new Set(usable.map((c) => c.registry))].map((registry) => ({
        runner,
        target: registry,
        group: `gitlab|${gitlab.url}`,
        intervalMs: gitlab.intervalMs,
        timeoutMs: config.timeoutMs,
        settings: { gitlab, credentials: usable.filter((c) => c.registry === registry) },
      }));
    });
  },
  run: async (ctx, harm) => {
    const [{ gitlabClient }, { checkCredential }] = await Promise.all([import("../gitlab/client.js"), import("./credential-check.js")]);
    const client = gitlabClient(ctx.settings.gitlab, ctx.logger, harm.gitlab.for(ctx.settings.gitlab.url));
    try {
      const checks: CredentialCheck[] = [];
      for (const c of ctx.settings.credentials) checks.push(await checkCredential(client, c, ctx.signal, ctx.logger));
      return checks;
    } finally {
      await client.close();
    }
  },
  record: (key, checks, sink) => {
    // Over the GitLab API budget (or GitLab's own limit) an owner is not unknown, only unasked: its last facts stand.
    if (checks.some((c) => c.error?.reason === "rate_limited")) return;
    sink.checks(key, checks);
  },
});

const certificateCheck = defineKind<{ ca?: string }, number | undefined>({
  kind: "certificate_check",
  daemonOnly: true,
  targets: ({ config, runners }) =>
    tlsRegistries(config, runners).map((registry) => {
      const ca = config.registries[registry]?.ca;
      return {
        runner: NO_RUNNER,
        target: registry,
        group: registry,
        intervalMs: Math.max(config.intervalMs, 60_000),
        timeoutMs: config.timeoutMs,
        settings: ca !== undefined ? { ca } : {},
      };
    }),
  run: async (ctx) => {
    const { certificateExpiry } = await import("../registry/tls.js");
    const found = await certificateExpiry(ctx.target, { signal: ctx.signal, ...ctx.settings });
    return found?.notAfter;
  },
  record: (key, notAfterMs, sink) => sink.cert(key, key.target, notAfterMs),
});

/** Tasks of a registry, not of a runner, run under this one. */
const NO_RUNNER: Runner = { name: "", mode: "direct", source: "", dockerHost: "", images: [] };

/** Registries spoken to over TLS: their certificates are worth watching. */
export function tlsRegistries(config: Config, runners: RunnerFacts[]): string[] {
  const all = new Set(runners.flatMap((r) => r.registries.map(normalizeRegistry)));
  return [...all].filter((r) => registryScheme(r, config.registries[r]) === "https");
}

/** Every probe kind, in the order plan() lists their tasks. */
export const PROBE_KINDS: readonly ProbeKindEntry[] = [login, pull, localCanary, gitlabCanary, credentialCheck, certificateCheck];
