import type { Config } from "../config/resolve.js";
import { DOCKER_HUB } from "../image.js";
import type { Runner } from "../types.js";

/**
 * Which pull a `direct` pull probe makes (SPEC.md, Probes → pull): a HEAD of
 * the manifest each interval, a full pull (every blob through sha256) every
 * full_pull_interval and whenever the digest changed. A full pull every
 * minute of a 1 GB image by 20 runners is ~29 TB a day; a HEAD is a few
 * hundred bytes and, on Docker Hub, spends no pull quota.
 */

export type PullKind = "full" | "manifest";

export const DEFAULT_FULL_PULL_INTERVAL_MS = 60 * 60_000;

/**
 * The full-pull interval for one runner's image at a registry: the runner's
 * own setting, then the registry's, then the top level's, then 1h. Docker Hub
 * images get full pulls only when the runner or `registries["docker.io"]` asks
 * for them: undefined means never (its GETs of manifests count against the
 * pull quota jobs need).
 */
export function fullPullIntervalFor(config: Config, runner: Pick<Runner, "fullPullIntervalMs">, registry: string): number | undefined {
  if (runner.fullPullIntervalMs !== undefined) return runner.fullPullIntervalMs;
  const own = config.registries[registry]?.fullPullIntervalMs;
  if (own !== undefined) return own;
  if (registry === DOCKER_HUB) return undefined;
  return config.fullPullIntervalMs ?? DEFAULT_FULL_PULL_INTERVAL_MS;
}

/** What one probe's pulls remember between rounds. */
export interface PullState {
  /** Epoch ms when the last full pull that succeeded started. */
  lastFullAt?: number;
  /** The manifest digest last seen (HEAD or full pull). */
  digest?: string;
}

/** A full pull is due: first time, interval over (0 = always), never for undefined. */
export function fullPullDue(state: PullState, intervalMs: number | undefined, now: number): boolean {
  if (intervalMs === undefined) return false;
  if (state.lastFullAt === undefined) return true;
  return now - state.lastFullAt >= intervalMs;
}

/** After a HEAD: the digest moved since it was last seen, and full pulls are allowed at all. */
export function digestChanged(state: PullState, digest: string | undefined, intervalMs: number | undefined): boolean {
  return intervalMs !== undefined && digest !== undefined && state.digest !== undefined && digest !== state.digest;
}

/** Pull states of the daemon's probes, keyed by probe identity; bounded, idle ones expire. */
export class PullStates {
  readonly #states = new Map<string, PullState & { usedAt: number }>();
  readonly #max: number;

  constructor(max = 10_000) {
    this.#max = max;
  }

  get(key: string, now = Date.now()): PullState {
    let state = this.#states.get(key);
    if (state === undefined) {
      state = { usedAt: now };
      this.#states.set(key, state);
      this.#evict(now);
    }
    state.usedAt = now;
    return state;
  }

  get size(): number {
    return this.#states.size;
  }

  #evict(now: number): void {
    // A state idle for a day belongs to an image no runner pulls any more.
    for (const [key, s] of this.#states) if (now - s.usedAt > 24 * 60 * 60_000) this.#states.delete(key);
    while (this.#states.size > this.#max) {
      const oldest = this.#states.keys().next().value;
      if (oldest === undefined) break;
      this.#states.delete(oldest);
    }
  }
}
