/**
 * The scheduler's slots: `size` runs at once, all groups together, and each
 * group (the registry or GitLab a task talks to) at most its share. Shares are
 * fixed by demand — each group's runs per second over all groups', apportioned
 * so they add up to `size` with at least one each — so a group that hangs holds
 * at most its share and every other group keeps its own. A run takes its global
 * slot and its group's place together, never one while waiting for the other;
 * runs wait in one queue in the order they became due, and the first one whose
 * group has room goes next.
 */
export class FairShare {
  readonly #size: number;
  #free: number;
  readonly #running = new Map<string, number>();
  readonly #waiting = new Map<string, Waiter[]>();
  #shares = new Map<string, number>();
  #seq = 0;

  constructor(size: number) {
    this.#size = Math.max(1, size);
    this.#free = this.#size;
  }

  /** Demand per group (runs per second, or any weight); replaces the shares for the runs that follow. */
  setDemand(demand: Map<string, number>): void {
    this.#shares = apportion(this.#size, demand);
    this.#dispatch();
  }

  /** The most runs of a group at once; a group of no known demand gets one. */
  shareOf(group: string): number {
    return this.#shares.get(group) ?? (this.#shares.size === 0 ? this.#size : 1);
  }

  runningOf(group: string): number {
    return this.#running.get(group) ?? 0;
  }

  waiting(): number {
    let n = 0;
    for (const list of this.#waiting.values()) n += list.length;
    return n;
  }

  /**
   * Wait in the queue until a slot and the group's place are both free, run
   * `work`, give both back. Resolves false without running when `cancel`
   * aborts first (the scheduler stopping, the task removed).
   */
  run(group: string, cancel: AbortSignal, work: () => Promise<void>): Promise<boolean> {
    if (cancel.aborted) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const waiter: Waiter = {
        seq: this.#seq++,
        group,
        start: () => {
          cancel.removeEventListener("abort", onCancel);
          work()
            .catch(() => undefined)
            .finally(() => {
              this.#release(group);
              resolve(true);
            });
        },
      };
      const onCancel = () => {
        if (this.#remove(waiter)) resolve(false);
      };
      cancel.addEventListener("abort", onCancel, { once: true });
      const list = this.#waiting.get(group) ?? [];
      list.push(waiter);
      this.#waiting.set(group, list);
      this.#dispatch();
    });
  }

  /** Start waiting runs while slots are free: the earliest due among groups below their share. */
  #dispatch(): void {
    while (this.#free > 0) {
      let next: Waiter | undefined;
      for (const [group, list] of this.#waiting) {
        const head = list[0];
        if (head === undefined || this.runningOf(group) >= this.shareOf(group)) continue;
        if (next === undefined || head.seq < next.seq) next = head;
      }
      if (next === undefined) return;
      this.#remove(next);
      this.#free--;
      this.#running.set(next.group, this.runningOf(next.group) + 1);
      next.start();
    }
  }

  #release(group: string): void {
    this.#free++;
    const left = this.runningOf(group) - 1;
    if (left > 0) this.#running.set(group, left);
    else this.#running.delete(group);
    this.#dispatch();
  }

  #remove(waiter: Waiter): boolean {
    const list = this.#waiting.get(waiter.group);
    const i = list?.indexOf(waiter) ?? -1;
    if (list === undefined || i < 0) return false;
    list.splice(i, 1);
    if (list.length === 0) this.#waiting.delete(waiter.group);
    return true;
  }
}

interface Waiter {
  seq: number;
  group: string;
  start(): void;
}

/**
 * Split `size` places over groups in proportion to their demand, at least one
 * each, by largest remainder, so that they add up to `size` whenever there are
 * no more groups than places. One group alone gets all of them.
 */
export function apportion(size: number, demand: Map<string, number>): Map<string, number> {
  const groups = [...demand].filter(([, d]) => d > 0);
  const total = groups.reduce((sum, [, d]) => sum + d, 0);
  const shares = new Map<string, number>();
  if (groups.length === 0) return shares;
  const exact = groups.map(([g, d]) => ({ g, q: (size * d) / total }));
  for (const { g, q } of exact) shares.set(g, Math.max(1, Math.floor(q)));
  let left = size - [...shares.values()].reduce((a, b) => a + b, 0);
  const owed = exact.map(({ g, q }) => ({ g, r: q - (shares.get(g) ?? 0) })).sort((a, b) => b.r - a.r || a.g.localeCompare(b.g));
  for (const { g } of owed) {
    if (left <= 0) break;
    shares.set(g, (shares.get(g) ?? 0) + 1);
    left--;
  }
  return shares;
}
