import { createHash } from "node:crypto";
import type { Reason } from "../reasons.js";
import type { Secret } from "../secret.js";

/**
 * Auth-failure backoff (SPEC.md, Probes → doing no harm). GitLab bans an IP
 * that fails authentication too often (30 failures in 3 minutes → an hour of
 * 403 by default), and that ban locks out every job on the host. So a secret a
 * registry refused is tried there again only after a growing pause, by one
 * probe at a time whatever the number of runners holding it, and the failures
 * of all secrets at one registry stay under a budget per window.
 *
 * Entries are keyed by a hash of registry + username + secret, never the
 * secret itself; they expire, and the map is bounded.
 */

export interface AuthBackoffOptions {
  /** Longest pause between two tries of a refused secret. */
  capMs: number;
  /** Failed authentications allowed per registry per window. */
  maxFailures: number;
  windowMs: number;
  /** At most this many secrets remembered; the least recently used go first. */
  maxEntries?: number;
  now?: () => number;
}

export const DEFAULT_AUTH_BACKOFF = { capMs: 10 * 60_000, maxFailures: 10, windowMs: 3 * 60_000 } as const;

/** How one attempt ended, as far as authentication goes. */
export type AttemptOutcome =
  | { kind: "refused"; reason: Reason; error: string }
  /** The registry took the secret (the probe may still have failed later, on a missing tag…). */
  | { kind: "accepted" }
  /** No verdict on the secret: a timeout, a refused connection. */
  | { kind: "inconclusive" };

/** A refused secret waiting for its next try: what the probes holding it report meanwhile. */
export interface Held {
  kind: "hold";
  reason: Reason;
  /** The last refusal's error text (already scrubbed). */
  error: string;
  /** Epoch ms of the next try. */
  nextAttemptAt: number;
  /** Refusals in a row. */
  failures: number;
}

export interface Attempt {
  kind: "attempt";
  /** Report how it went; exactly once. */
  done(outcome: AttemptOutcome): void;
}

interface Entry {
  registry: string;
  state: "refused" | "accepted";
  failures: number;
  delayMs: number;
  nextAttemptAt: number;
  reason: Reason;
  error: string;
  /** A try (or the first contact of an unknown secret) is under way; others wait or hold. */
  inFlight?: Promise<void>;
  usedAt: number;
}

/** Ticks of a fixed grid may land a little before the pause ends; they still count as the next round. */
const EARLY_FRACTION = 0.05;
/** An entry not used for this long is forgotten (a secret that left every config). */
const IDLE_EXPIRY_MS = 2 * 60 * 60_000;

/** The backoff key of a secret at a registry: a hash, so no secret is ever kept as a map key. */
export function backoffKey(registry: string, username: string, secret: Secret | undefined): string {
  return createHash("sha256")
    .update(`${registry}\0${username}\0${secret?.reveal() ?? ""}`)
    .digest("hex")
    .slice(0, 32);
}

export class AuthBackoff {
  readonly #opts: Required<AuthBackoffOptions>;
  readonly #entries = new Map<string, Entry>();
  /** Epoch ms of each failed authentication per registry, within the window. */
  readonly #failures = new Map<string, number[]>();
  /** Retries of refused secrets under way per registry: each may fail, so each holds a place in the budget. */
  readonly #pending = new Map<string, number>();

  constructor(opts: Partial<AuthBackoffOptions> = {}) {
    this.#opts = { ...DEFAULT_AUTH_BACKOFF, maxEntries: 10_000, now: Date.now, ...opts };
  }

  /**
   * Ask to try a secret at a registry. An unknown secret is tried at once, but
   * while its first contact is under way other probes holding it wait for the
   * verdict (so ten runners sharing a revoked secret fail once, not ten
   * times). A refused one is tried by one probe when its pause is over and the
   * registry's budget allows; until then every probe holding it is told to hold.
   */
  async enter(key: string, registry: string, intervalMs: number, signal: AbortSignal): Promise<Attempt | Held> {
    for (;;) {
      const entry = this.#entries.get(key);
      const now = this.#opts.now();
      if (entry !== undefined) entry.usedAt = now;
      if (entry === undefined) return this.#firstContact(key, registry, intervalMs, now);
      if (entry.inFlight !== undefined) {
        // A first contact or a retry of this secret is under way: its verdict is what every holder would get.
        await abortable(entry.inFlight, signal);
        continue;
      }
      if (entry.state === "accepted") return this.#attempt(key, registry, intervalMs, now);
      const budgetAt = this.#budgetFreeAt(registry, now);
      // The registry's budget is kept exactly; the pause only to within a tick.
      if (now + entry.delayMs * EARLY_FRACTION < entry.nextAttemptAt || now < budgetAt) {
        const next = Math.max(entry.nextAttemptAt, budgetAt);
        return { kind: "hold", reason: entry.reason, error: entry.error, nextAttemptAt: next, failures: entry.failures };
      }
      return this.#attempt(key, registry, intervalMs, now);
    }
  }

  /** What the backoff holds for a key, for /status; undefined when the secret is not refused. */
  held(key: string): Omit<Held, "kind"> | undefined {
    const e = this.#entries.get(key);
    if (e === undefined || e.state !== "refused") return undefined;
    return { reason: e.reason, error: e.error, nextAttemptAt: e.nextAttemptAt, failures: e.failures };
  }

  /** Failed authentications at a registry within the window, for tests and the log. */
  failuresIn(registry: string): number {
    return this.#recent(registry, this.#opts.now()).length;
  }

  get size(): number {
    return this.#entries.size;
  }

  #firstContact(key: string, registry: string, intervalMs: number, now: number): Attempt {
    const entry: Entry = {
      registry,
      state: "accepted",
      failures: 0,
      delayMs: intervalMs,
      nextAttemptAt: now,
      reason: "unknown",
      error: "",
      usedAt: now,
    };
    this.#entries.set(key, entry);
    this.#evict();
    return this.#track(key, registry, intervalMs, now, entry, true);
  }

  #attempt(key: string, registry: string, intervalMs: number, now: number): Attempt {
    const entry = this.#entries.get(key);
    if (entry === undefined) return this.#firstContact(key, registry, intervalMs, now);
    // Accepted secrets run freely (every runner, every round); only a refused one is tried by one probe at a time.
    return this.#track(key, registry, intervalMs, now, entry, entry.state === "refused");
  }

  #track(key: string, registry: string, intervalMs: number, startedAt: number, entry: Entry, exclusive: boolean): Attempt {
    let finish: () => void = () => undefined;
    if (exclusive) entry.inFlight = new Promise<void>((resolve) => (finish = resolve));
    const retry = entry.state === "refused";
    if (retry) this.#pending.set(registry, (this.#pending.get(registry) ?? 0) + 1);
    let done = false;
    return {
      kind: "attempt",
      done: (outcome) => {
        if (done) return;
        done = true;
        if (exclusive) delete entry.inFlight;
        if (retry) this.#pending.set(registry, (this.#pending.get(registry) ?? 1) - 1);
        this.#settle(key, registry, intervalMs, startedAt, entry, outcome);
        finish();
      },
    };
  }

  #settle(key: string, registry: string, intervalMs: number, startedAt: number, entry: Entry, outcome: AttemptOutcome): void {
    if (outcome.kind === "inconclusive") {
      // A first contact that got no verdict leaves the secret unknown: the next probe tries again.
      if (entry.state === "accepted" && entry.failures === 0 && entry.error === "") this.#entries.delete(key);
      return;
    }
    if (outcome.kind === "accepted") {
      Object.assign(entry, { state: "accepted", failures: 0, delayMs: intervalMs, reason: "unknown", error: "" });
      return;
    }
    const now = this.#opts.now();
    this.#recent(registry, now).push(now);
    // The pause grows from one interval, doubling to the cap; it runs from the start of the refused try, as the round grid does.
    const delayMs = entry.state === "refused" ? Math.min(this.#opts.capMs, entry.delayMs * 2) : Math.min(this.#opts.capMs, intervalMs);
    Object.assign(entry, {
      state: "refused",
      failures: entry.state === "refused" ? entry.failures + 1 : 1,
      delayMs,
      nextAttemptAt: startedAt + delayMs,
      reason: outcome.reason,
      error: outcome.error,
      usedAt: now,
    });
    if (!this.#entries.has(key)) this.#entries.set(key, entry);
  }

  /** When the registry's failure budget allows one more failure: now, or when the oldest failure leaves the window. */
  #budgetFreeAt(registry: string, now: number): number {
    const recent = this.#recent(registry, now);
    const pending = this.#pending.get(registry) ?? 0;
    if (recent.length + pending < this.#opts.maxFailures) return now;
    const oldest = recent[recent.length + pending - this.#opts.maxFailures];
    // Every place is taken by a retry under way: ask again a window later at the latest.
    return oldest !== undefined ? oldest + this.#opts.windowMs : now + this.#opts.windowMs;
  }

  /** The registry's failure times within the window; the stored array itself, so a caller may push to it. */
  #recent(registry: string, now: number): number[] {
    const recent = (this.#failures.get(registry) ?? []).filter((t) => now - t < this.#opts.windowMs);
    this.#failures.set(registry, recent);
    return recent;
  }

  #evict(): void {
    const now = this.#opts.now();
    for (const [key, e] of this.#entries) {
      if (e.inFlight === undefined && now - e.usedAt > Math.max(IDLE_EXPIRY_MS, e.delayMs * 2)) this.#entries.delete(key);
    }
    while (this.#entries.size > this.#opts.maxEntries) {
      // Maps iterate in insertion order; the first idle entry is the oldest one.
      const oldest = [...this.#entries].find(([, e]) => e.inFlight === undefined)?.[0];
      if (oldest === undefined) break;
      this.#entries.delete(oldest);
    }
  }
}

/** Wait for p, or throw when the signal aborts first. */
function abortable(p: Promise<void>, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
    signal.addEventListener("abort", onAbort, { once: true });
    void p.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    });
  });
}
