import cron, { type ScheduledTask } from "node-cron";
import { deadline } from "./deadline.js";
import type { Logger } from "./log.js";

/** One thing to run periodically: a probe of one target for one runner, a canary, a credential check. */
export interface Task {
  /** Stable identity across re-plans: "login|runner|registry". */
  key: string;
  intervalMs: number;
  /** A cron expression (node-cron syntax); replaces intervalMs when set. */
  schedule?: string;
  /** Deadline of one run, from the moment it holds a concurrency slot. */
  timeoutMs: number;
  /**
   * The far end this task talks to (a registry host). Tasks of one group hold at
   * most concurrency - 1 slots, so one stuck registry never takes them all.
   */
  group?: string;
  /** One run. Must honour the signal; its errors are logged, never fatal. */
  run(signal: AbortSignal): Promise<void>;
}

export interface SchedulerOptions {
  concurrency: number;
  logger: Logger;
  /** Start offset of a new task's first run; spreads load. Defaults to up to 10% of the interval, at most 2 s. */
  jitter?: (intervalMs: number) => number;
}

interface Loop {
  task: Task;
  running: boolean;
  timer?: NodeJS.Timeout;
  cronTask?: ScheduledTask;
  stopped: boolean;
  runs: number;
}

/**
 * Owns periods, jitter, the global concurrency limit and per-run deadlines;
 * a task only knows how to run once. No task overlaps itself: a tick that
 * finds the previous run still going is skipped. A run waits for a slot at most
 * one period, so one stuck target can only hold its own slot.
 */
export class Scheduler {
  readonly #loops = new Map<string, Loop>();
  readonly #stop = new AbortController();
  readonly #slots: Semaphore;
  readonly #logger: Logger;
  readonly #jitter: (intervalMs: number) => number;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #groups = new Map<string, Semaphore>();
  readonly #groupSize: number;

  constructor(opts: SchedulerOptions) {
    this.#slots = new Semaphore(opts.concurrency);
    this.#groupSize = Math.max(1, opts.concurrency - 1);
    this.#logger = opts.logger;
    this.#jitter = opts.jitter ?? ((ms) => Math.random() * Math.min(ms * 0.1, 2000));
  }

  /** Start tasks that are new, stop those no longer listed; returns the keys of both. */
  sync(tasks: Task[]): { added: string[]; removed: string[] } {
    const wanted = new Map(tasks.map((t) => [t.key, t]));
    const removed: string[] = [];
    for (const [key, loop] of this.#loops) {
      const next = wanted.get(key);
      if (next && next.intervalMs === loop.task.intervalMs && next.schedule === loop.task.schedule) {
        loop.task = next; // same schedule: keep the loop, take the fresh closure (new runner facts)
        continue;
      }
      this.#stopLoop(loop);
      this.#loops.delete(key);
      if (!next) removed.push(key);
    }
    const added: string[] = [];
    for (const [key, task] of wanted) {
      if (this.#loops.has(key)) continue;
      this.#startLoop(task);
      added.push(key);
    }
    return { added, removed: removed.filter((k) => !wanted.has(k)) };
  }

  /** Run every task once (the `once` command), under the same concurrency limit and deadlines. */
  async runOnce(tasks: Task[]): Promise<void> {
    await Promise.all(tasks.map((t) => this.#runGuarded({ task: t, running: false, stopped: false, runs: 0 })));
  }

  /** How many times a task has finished, for readiness: 0 until its first run ends. */
  runsOf(key: string): number {
    return this.#loops.get(key)?.runs ?? 0;
  }

  keys(): string[] {
    return [...this.#loops.keys()];
  }

  /** Stop every loop, abort runs in flight, and wait for them to settle. */
  async stop(): Promise<void> {
    this.#stop.abort(new Error("ci-prober is stopping"));
    for (const loop of this.#loops.values()) this.#stopLoop(loop);
    this.#loops.clear();
    await Promise.allSettled([...this.#inFlight]);
  }

  #group(name: string): Semaphore {
    let sem = this.#groups.get(name);
    if (!sem) {
      sem = new Semaphore(this.#groupSize);
      this.#groups.set(name, sem);
    }
    return sem;
  }

  #startLoop(task: Task): void {
    const loop: Loop = { task, running: false, stopped: false, runs: 0 };
    this.#loops.set(task.key, loop);
    const first = Math.max(0, Math.round(this.#jitter(task.intervalMs)));
    if (task.schedule !== undefined) {
      // A cron schedule: node-cron fires the ticks; one run at start so the first round completes.
      loop.cronTask = cron.schedule(task.schedule, () => this.#tick(loop), { noOverlap: false, name: task.key });
      loop.timer = setTimeout(() => this.#tick(loop), first);
      return;
    }
    // Intervals keep to a fixed grid from the first run, so a slow run does not push later ones back.
    const start = Date.now() + first;
    let n = 0;
    const next = () => {
      if (loop.stopped) return;
      const due = start + n * loop.task.intervalMs;
      n++;
      loop.timer = setTimeout(() => {
        this.#tick(loop);
        next();
      }, Math.max(0, due - Date.now()));
    };
    next();
  }

  #stopLoop(loop: Loop): void {
    loop.stopped = true;
    if (loop.timer) clearTimeout(loop.timer);
    void loop.cronTask?.destroy();
  }

  #tick(loop: Loop): void {
    if (loop.stopped) return;
    if (loop.running) {
      this.#logger.warn({ task: loop.task.key }, "probe skipped: previous run still in flight");
      return;
    }
    const p = this.#runGuarded(loop);
    this.#inFlight.add(p);
    void p.finally(() => this.#inFlight.delete(p));
  }

  async #runGuarded(loop: Loop): Promise<void> {
    const { task } = loop;
    loop.running = true;
    const waitLimit = deadline(Math.max(task.intervalMs, task.timeoutMs), this.#stop.signal);
    let release: (() => void) | undefined;
    let releaseGroup: (() => void) | undefined;
    try {
      if (task.group !== undefined) releaseGroup = await this.#group(task.group).acquire(waitLimit.signal);
      release = await this.#slots.acquire(waitLimit.signal);
    } catch {
      releaseGroup?.();
      loop.running = false;
      if (!this.#stop.signal.aborted) this.#logger.warn({ task: task.key }, "probe skipped: no concurrency slot within one period");
      return;
    } finally {
      waitLimit.dispose();
    }
    const limit = deadline(task.timeoutMs, this.#stop.signal);
    try {
      await task.run(limit.signal);
    } catch (err) {
      this.#logger.error({ task: task.key, err: err instanceof Error ? err.message : String(err) }, "task failed");
    } finally {
      limit.dispose();
      release();
      releaseGroup?.();
      loop.running = false;
      loop.runs++;
    }
  }
}

/** A counting semaphore whose waiters give up when their signal aborts. */
export class Semaphore {
  #free: number;
  readonly #waiters: { grant: () => void; signal: AbortSignal; onAbort: () => void }[] = [];

  constructor(size: number) {
    this.#free = size;
  }

  acquire(signal: AbortSignal): Promise<() => void> {
    signal.throwIfAborted();
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve(this.#releaser());
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        signal,
        grant: () => {
          signal.removeEventListener("abort", waiter.onAbort);
          resolve(this.#releaser());
        },
        onAbort: () => {
          const i = this.#waiters.indexOf(waiter);
          if (i >= 0) this.#waiters.splice(i, 1);
          reject(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
        },
      };
      signal.addEventListener("abort", waiter.onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  #releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.#waiters.shift();
      if (next) next.grant();
      else this.#free++;
    };
  }
}
