import { createHash } from "node:crypto";
import { sleep, timeLeft } from "../deadline.js";
import { type HttpStatusError, ProbeError } from "../reasons.js";
import type { Secret } from "../secret.js";

/**
 * The GitLab API budget (SPEC.md, Probes → doing no harm): every request
 * ci-prober sends to one GitLab instance — owner and token checks, the
 * canary, variable crawls — takes a slot of at most N a minute, waits out a
 * `Retry-After` or a spent `RateLimit-Remaining`, and is counted by route
 * template. Owner and token look-ups are answered from a cache for one
 * `gitlab.interval`, so ten runners sharing one user cost one look-up.
 *
 * The seam for other GitLab callers: `budgets.for(url)` gives the budget to
 * hand to `new GitlabClient({ budget })`; mark cacheable look-ups `cache: true`.
 */

export const DEFAULT_REQUESTS_PER_MINUTE = 60;
const MINUTE_MS = 60_000;
/** Cached answers per instance; the oldest go first. */
const MAX_CACHED = 10_000;

export interface GitlabBudgetOptions {
  requestsPerMinute: number;
  /** How long a cached look-up answers (gitlab.interval). */
  cacheTtlMs: number;
  /** Each request sent: route template and status code ("error" when no answer came). */
  onRequest?(endpoint: string, code: string): void;
  now?: () => number;
}

/** A cached answer: the body of a 2xx, or the status error of a refusal (a revoked token's 401 is a fact worth keeping too). */
export type CachedAnswer = { text: string } | { error: HttpStatusError };

export class GitlabBudget {
  readonly #opts: Required<Omit<GitlabBudgetOptions, "onRequest">> & Pick<GitlabBudgetOptions, "onRequest">;
  /** Start times of the requests of the last minute. */
  readonly #sent: number[] = [];
  #pausedUntil = 0;
  readonly #cache = new Map<string, { answer: CachedAnswer; until: number }>();

  constructor(opts: GitlabBudgetOptions) {
    this.#opts = { now: Date.now, ...opts };
  }

  get requestsPerMinute(): number {
    return this.#opts.requestsPerMinute;
  }

  /**
   * Wait for a slot. A wait that would outlast the caller's deadline fails
   * at once as rate_limited: the check reports it and tries again next round.
   */
  async take(endpoint: string, signal: AbortSignal): Promise<void> {
    for (;;) {
      signal.throwIfAborted();
      const now = this.#opts.now();
      const waitMs = this.#waitMs(now);
      if (waitMs <= 0) {
        this.#sent.push(now);
        return;
      }
      if (waitMs > timeLeft(signal)) {
        const why =
          this.#pausedUntil > now
            ? "GitLab asked to wait (Retry-After or RateLimit-Remaining 0)"
            : `GitLab API budget spent (${this.#opts.requestsPerMinute} requests a minute)`;
        throw new ProbeError("rate_limited", `${endpoint}: ${why}; next slot in ${Math.ceil(waitMs / 1000)}s`);
      }
      await sleep(waitMs, signal);
    }
  }

  /** What an answer says about GitLab's own limits: Retry-After, or RateLimit-Remaining 0 until RateLimit-Reset. */
  observe(endpoint: string, status: number | undefined, headers: Record<string, string | string[] | undefined>): void {
    this.#opts.onRequest?.(endpoint, status === undefined ? "error" : String(status));
    if (status === undefined) return;
    const now = this.#opts.now();
    const retryAfter = seconds(first(headers["retry-after"]), now);
    if (retryAfter !== undefined && (status === 429 || status === 503)) this.#pauseUntil(now + retryAfter * 1000);
    const remaining = first(headers["ratelimit-remaining"]);
    if (remaining !== undefined && /^\s*0\s*$/.test(remaining)) {
      const reset = first(headers["ratelimit-reset"]);
      const n = reset !== undefined && /^\d+$/.test(reset.trim()) ? Number(reset.trim()) : 60;
      // RateLimit-Reset is epoch seconds in GitLab, a delta in the IETF draft: a small number is a delta.
      this.#pauseUntil(n > 1_000_000_000 ? n * 1000 : now + n * 1000);
    }
  }

  /** A cached look-up answer, if one is fresh. */
  cached(key: string): CachedAnswer | undefined {
    const hit = this.#cache.get(key);
    if (hit === undefined) return undefined;
    if (hit.until <= this.#opts.now()) {
      this.#cache.delete(key);
      return undefined;
    }
    return hit.answer;
  }

  remember(key: string, answer: CachedAnswer): void {
    const now = this.#opts.now();
    this.#cache.delete(key);
    this.#cache.set(key, { answer, until: now + this.#opts.cacheTtlMs });
    for (const [k, v] of this.#cache) {
      if (v.until > now && this.#cache.size <= MAX_CACHED) break;
      this.#cache.delete(k);
    }
  }

  get cachedCount(): number {
    return this.#cache.size;
  }

  #pauseUntil(at: number): void {
    // A server's word on waiting is honoured, but never for more than an hour on one answer.
    this.#pausedUntil = Math.max(this.#pausedUntil, Math.min(at, this.#opts.now() + 60 * MINUTE_MS));
  }

  #waitMs(now: number): number {
    while (this.#sent.length > 0 && now - (this.#sent[0] ?? now) >= MINUTE_MS) this.#sent.shift();
    const paused = this.#pausedUntil - now;
    const full = this.#sent.length >= this.#opts.requestsPerMinute ? (this.#sent[0] ?? now) + MINUTE_MS - now : 0;
    return Math.max(paused, full, 0);
  }
}

/** One budget per GitLab instance, for the daemon's lifetime. */
export class GitlabBudgets {
  readonly #budgets = new Map<string, GitlabBudget>();
  readonly #defaults: (url: string) => GitlabBudgetOptions;

  constructor(defaults: (url: string) => GitlabBudgetOptions) {
    this.#defaults = defaults;
  }

  for(url: string): GitlabBudget {
    const key = url.replace(/\/+$/, "");
    let budget = this.#budgets.get(key);
    if (budget === undefined) {
      budget = new GitlabBudget(this.#defaults(key));
      this.#budgets.set(key, budget);
    }
    return budget;
  }
}

/** The cache key of a look-up: method, URL with query, and a hash of the token sent (never the token). */
export function lookupKey(method: string, url: URL, token: Secret | undefined | null): string {
  const who = token ? createHash("sha256").update(token.reveal()).digest("hex").slice(0, 32) : "-";
  return `${method} ${url.href} ${who}`;
}

// Segments after these name one thing (a project path, a user id, a variable key): the template says so.
const NAMED_BY_NEXT: Record<string, string> = { projects: ":id", groups: ":id", users: ":id", namespaces: ":id", variables: ":key" };

/** A route template for the metric: `GET /api/v4/projects/ci%2Fcanary/pipelines/55` → `GET /api/v4/projects/:id/pipelines/:id`. */
export function routeTemplate(method: string, path: string): string {
  const parts = path.split("?")[0]?.split("/") ?? [];
  const out = parts.map((part, i) => {
    const before = parts[i - 1];
    if (before !== undefined && NAMED_BY_NEXT[before] !== undefined && part !== "") return NAMED_BY_NEXT[before];
    return /^\d+$/.test(part) ? ":id" : part;
  });
  return `${method} ${out.join("/")}`;
}

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function seconds(value: string | undefined, now: number): number | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}
