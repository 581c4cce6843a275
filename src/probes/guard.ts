import { createHash } from "node:crypto";
import type { Config } from "../config/resolve.js";
import { normalizeRegistry, parseImageRef } from "../image.js";
import { DEFAULT_REQUESTS_PER_MINUTE, GitlabBudgets } from "../gitlab/budget.js";
import type { RateLimit } from "../registry/client.js";
import type { Credential, ProbeKind, ProbeResult, Runner } from "../types.js";
import { AuthBackoff, backoffKey, type AttemptOutcome, DEFAULT_AUTH_BACKOFF, type Held } from "./backoff.js";
import { fullPullIntervalFor, PullStates } from "./pull-plan.js";
import { runProbe } from "./run.js";
import { credentialInfo, ProbeLog, type ProbeContext } from "./types.js";

/**
 * What keeps the prober's own traffic from harming what it probes (SPEC.md,
 * Probes → doing no harm), held for the daemon's lifetime: the auth-failure
 * backoff, the results of identical probes shared between runners, and each
 * pull probe's memory of its last full pull.
 */
export class NoHarm {
  readonly backoff: AuthBackoff;
  readonly pulls = new PullStates();
  readonly shared = new SharedResults();
  /** One GitLab API budget per instance: owner checks, the canary and variable crawls share it. */
  readonly gitlab: GitlabBudgets;
  /** Where a registry's `ratelimit-*` headers go (the daemon's metrics). */
  onRateLimit: ((registry: string, rateLimit: RateLimit) => void) | undefined;
  /** Where each GitLab request is counted (the daemon's metrics). */
  onGitlabRequest: ((endpoint: string, code: string) => void) | undefined;

  constructor(config: Pick<Config, "authBackoff" | "gitlab">, now: () => number = Date.now) {
    this.backoff = new AuthBackoff({ ...(config.authBackoff ?? DEFAULT_AUTH_BACKOFF), now });
    const gitlab = config.gitlab;
    this.gitlab = new GitlabBudgets((url) => ({
      requestsPerMinute: (url === gitlab?.url ? gitlab.requestsPerMinute : undefined) ?? DEFAULT_REQUESTS_PER_MINUTE,
      // A little under one interval: each round of checks asks GitLab once, and the runners of that round share it.
      cacheTtlMs: Math.round((gitlab?.intervalMs ?? 5 * 60_000) * 0.9),
      onRequest: (endpoint, code) => this.onGitlabRequest?.(endpoint, code),
      now,
    }));
  }
}

export interface GuardedProbe<S> {
  config: Config;
  runner: Runner;
  probe: ProbeKind;
  target: string;
  intervalMs: number;
  signal: AbortSignal;
  /** A context for the probe body; its credentialFor is memoised here so the probe and the guard see one credential. */
  context(extra: Partial<ProbeContext<S>>): ProbeContext<S>;
  run(ctx: ProbeContext<S>): Promise<ProbeResult>;
}

/** Which registry a probe authenticates at; undefined for a probe that does not (the GitLab canary). */
export function registryOf(config: Config, probe: ProbeKind, target: string): string | undefined {
  try {
    if (probe === "login") return normalizeRegistry(target);
    if (probe === "pull") return parseImageRef(target).registry;
    if (target === "local" && config.canary.local) return parseImageRef(config.canary.local.image).registry;
  } catch {
    // An unparseable target is reported by the probe itself.
  }
  return undefined;
}

/**
 * Run one probe of one runner under the no-harm rules: identical `direct`
 * probes of several runners (same secret, registry, target, transport) run
 * once and share the result; a secret refused at a registry is held until its
 * backoff allows the next try; a pull probe gets its state (HEAD or full).
 */
export async function guardedProbe<S>(harm: NoHarm | undefined, g: GuardedProbe<S>): Promise<ProbeResult> {
  const registry = registryOf(g.config, g.probe, g.target);
  const ctx = g.context({});
  if (harm === undefined || registry === undefined) return g.run(ctx);
  let credential: Credential | undefined;
  try {
    credential = await ctx.credentialFor(registry);
  } catch {
    // The probe resolves it again and reports why it failed.
    return g.run(ctx);
  }
  const usable = credential?.secret !== undefined && credential.error === undefined ? credential : undefined;
  const secretKey = usable ? backoffKey(registry, usable.username, usable.secret) : undefined;
  const attempt = () => backedOff(harm, g, ctx, registry, secretKey, credential);
  try {
    if (g.runner.mode !== "direct" || g.probe === "canary") return await attempt();
    const identity = probeIdentity(g, registry, secretKey);
    if (g.probe === "pull") ctx.pullState = harm.pulls.get(identity);
    const { result, ranBy } = await harm.shared.run(identity, g.runner.name, g.intervalMs / 2, g.signal, attempt);
    if (ranBy !== g.runner.name) return sharedCopy(result, g.runner.name, ranBy, credential);
    return result.credential === undefined && credential !== undefined ? { ...result, credential: credentialInfo(credential) } : result;
  } catch (err) {
    // Only waiting can throw here (for another probe's verdict or result): the deadline passed meanwhile.
    return runProbe(g.probe, ctx, () => Promise.reject(err instanceof Error ? err : new Error(String(err))));
  }
}

/** The requests a direct probe sends are fixed by these; two probes with the same identity would send the same ones. */
function probeIdentity<S>(g: GuardedProbe<S>, registry: string, secretKey: string | undefined): string {
  const transport = g.config.registries[registry];
  const parts = [
    g.probe,
    registry,
    g.target,
    secretKey ?? "anonymous",
    transport?.insecure ?? false,
    transport?.caFile ?? "",
    transport?.platform ?? g.config.platform,
    g.probe === "pull" ? (fullPullIntervalFor(g.config, g.runner, registry) ?? "never") : "",
  ];
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex").slice(0, 32);
}

async function backedOff<S>(
  harm: NoHarm,
  g: GuardedProbe<S>,
  ctx: ProbeContext<S>,
  registry: string,
  key: string | undefined,
  credential: Credential | undefined,
): Promise<ProbeResult> {
  if (harm.onRateLimit) ctx.onRateLimit = harm.onRateLimit;
  if (key === undefined) return g.run(ctx);
  const gate = await harm.backoff.enter(key, registry, g.intervalMs, g.signal);
  if (gate.kind === "hold") return heldResult(g, registry, gate, credential);
  let refused = false;
  ctx.onCredentialRefused = () => (refused = true);
  let result: ProbeResult | undefined;
  try {
    result = await g.run(ctx);
    return result;
  } finally {
    gate.done(result ? outcomeOf(result, refused || (g.runner.mode === "engine" && isAuthReason(result))) : { kind: "inconclusive" });
  }
}

function isAuthReason(result: ProbeResult): boolean {
  return result.reason === "unauthorized" || result.reason === "forbidden";
}

/**
 * What a probe's end says about its secret. A refusal of the credential
 * itself backs it off; a missing tag or scope means the registry took it.
 */
function outcomeOf(result: ProbeResult, refused: boolean): AttemptOutcome {
  if (refused && result.reason !== undefined) return { kind: "refused", reason: result.reason, error: result.error ?? "" };
  const tookIt = result.success || result.reason === "not_found" || result.reason === "digest_mismatch" || isAuthReason(result);
  if (tookIt) return { kind: "accepted" };
  return { kind: "inconclusive" };
}

/**
 * The result a probe reports while its secret backs off: the held failure,
 * recorded like a run (so the gauges stay 0 and the last-run timestamp moves,
 * and CIProberStale stays quiet), saying when the next try is.
 */
function heldResult<S>(g: GuardedProbe<S>, registry: string, held: Held, credential: Credential | undefined): ProbeResult {
  const at = new Date(held.nextAttemptAt).toISOString();
  const log = new ProbeLog();
  const times = `${held.failures} time${held.failures === 1 ? "" : "s"}`;
  const message = `backing off, next attempt at ${at} (${registry} refused this credential ${times} in a row: ${held.error})`;
  log.step(message);
  return {
    probe: g.probe,
    runner: g.runner.name,
    target: g.target,
    success: false,
    reason: held.reason,
    error: message,
    durationSeconds: 0,
    startedAt: Date.now(),
    log: log.lines,
    backoff: { nextAttemptAt: held.nextAttemptAt, failures: held.failures },
    ...(credential ? { credential: credentialInfo(credential) } : {}),
  };
}

/** Another runner's result of the same requests, as this runner's: its own name and its own credential's source. */
function sharedCopy(result: ProbeResult, runner: string, ranBy: string, credential: Credential | undefined): ProbeResult {
  return {
    ...result,
    runner,
    sharedWith: ranBy,
    log: [`+0ms same requests as runner ${ranBy}'s ${result.probe} probe: its result is recorded here`, ...result.log],
    ...(credential ? { credential: credentialInfo(credential) } : {}),
  };
}

interface SharedEntry {
  startedAt: number;
  ranBy: string;
  promise: Promise<ProbeResult>;
}

/**
 * Results of identical probes within one round: the first runner's probe
 * runs, the others (in flight at the same time, or asking within half an
 * interval) take its result. Bounded; old entries go.
 */
export class SharedResults {
  readonly #entries = new Map<string, SharedEntry>();
  readonly #max: number;

  constructor(max = 10_000) {
    this.#max = max;
  }

  async run(
    identity: string,
    runner: string,
    freshMs: number,
    signal: AbortSignal,
    fn: () => Promise<ProbeResult>,
  ): Promise<{ result: ProbeResult; ranBy: string }> {
    const now = Date.now();
    const entry = this.#entries.get(identity);
    if (entry !== undefined && entry.ranBy !== runner && now - entry.startedAt < freshMs) {
      return { result: await abortable(entry.promise, signal), ranBy: entry.ranBy };
    }
    const promise = fn();
    this.#entries.delete(identity);
    this.#entries.set(identity, { startedAt: now, ranBy: runner, promise });
    this.#evict(now);
    return { result: await promise, ranBy: runner };
  }

  get size(): number {
    return this.#entries.size;
  }

  #evict(now: number): void {
    for (const [key, e] of this.#entries) {
      // Insertion order is start order: the first fresh one ends the sweep.
      if (now - e.startedAt < 60 * 60_000 && this.#entries.size <= this.#max) break;
      this.#entries.delete(key);
    }
  }
}

function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  signal.throwIfAborted();
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
    signal.addEventListener("abort", onAbort, { once: true });
    void p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
