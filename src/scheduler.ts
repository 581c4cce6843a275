import cron, { type ScheduledTask } from "node-cron";
import { deadline } from "./deadline.js";
import { FairShare } from "./fair-share.js";
import type { Logger } from "./log.js";
import { KeyMap, keyText, type TaskKey } from "./task-key.js";
import { Scrubber, withSecretScope } from "./secret.js";

/** One thing to run periodically: a probe of one target for one runner, a canary, a credential check. */
export interface Task {
  /** Stable identity across re-plans. */
  key: TaskKey;
  intervalMs: number;
  /** A cron expression (node-cron syntax); replaces intervalMs when set. */
  schedule?: string;
  /** Delay of the first run instead of the jitter (the re-plan waits one interval: the plan before it is fresh). */
  firstRunMs?: number;
  /** Deadline of one run, from the moment it holds a concurrency slot. */
  timeoutMs: number;
  /**
   * The far end this task talks to (a registry host). Runs of one group hold at
   * most the group's share of the slots (fair-share.ts), so one stuck registry
   * never takes more than its own.
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
  /**
   * A tick found the task's previous run still waiting for a slot ("queued") or
   * still running ("running"): this period's run is not started. The daemon
   * counts it in ci_prober_probe_skipped_total.
   */
  onSkip?: (task: Task, cause: SkipCause) => void;
  /** Called after every run that ran (not a skipped tick): readiness waits on it instead of polling. */
  onRunEnd?: (key: TaskKey) => void;
}

export type SkipCause = "queued" | "running";

interface Loop {
  task: Task;
  /** From the tick that queued a run until that run ends. */
  running: boolean;
  /** The run holds its slot (it is past the queue). */
  started?: boolean;
  /** Takes a queued run out of the queue when the loop stops. */
  cancel?: AbortController;
  timer?: NodeJS.Timeout;
  cronTask?: ScheduledTask;
  stopped: boolean;
  runs: number;
}

/**
 * Owns periods, jitter, the global concurrency limit and per-run deadlines;
 * a task only knows how to run once. No task overlaps itself: a tick that
 * finds the previous run still queued or running is skipped and reported
 * (onSkip). A queued run waits in one queue until its slot comes, however long:
 * it is never dropped, and the group shares keep a stuck registry to its own.
 */
export class Scheduler {
  readonly #loops = new KeyMap<Loop>();
  readonly #stop = new AbortController();
  readonly #slots: FairShare;
  readonly #logger: Logger;
  readonly #jitter: (intervalMs: number) => number;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #onSkip: ((task: Task, cause: SkipCause) => void) | undefined;
  readonly #onRunEnd: ((key: TaskKey) => void) | undefined;

  constructor(opts: SchedulerOptions) {
    this.#slots = new FairShare(opts.concurrency);
    this.#onSkip = opts.onSkip;
    this.#onRunEnd = opts.onRunEnd;
    this.#logger = opts.logger;
    this.#jitter = opts.jitter ?? ((ms) => Math.random() * Math.min(ms * 0.1, 2000));
  }

  /** Start tasks that are new, stop those no longer listed; returns the keys of both. */
  sync(tasks: Task[]): { added: TaskKey[]; removed: TaskKey[] } {
    const wanted = new KeyMap<Task>();
    for (const t of tasks) wanted.set(t.key, t);
    const removed: TaskKey[] = [];
    for (const [key, loop] of this.#loops.entries()) {
      const next = wanted.get(key);
      if (next && next.intervalMs === loop.task.intervalMs && next.schedule === loop.task.schedule) {
        loop.task = next; // same schedule: keep the loop, take the fresh closure (new runner facts)
        continue;
      }
      this.#stopLoop(loop);
      this.#loops.delete(key);
      if (!next) removed.push(key);
    }
    const added: TaskKey[] = [];
    for (const [key, task] of wanted.entries()) {
      if (this.#loops.has(key)) continue;
      this.#startLoop(task);
      added.push(key);
    }
    this.#slots.setDemand(demandOf(tasks));
    return { added, removed: removed.filter((k) => !wanted.has(k)) };
  }

  /** Run every task once (the `once` command), under the same concurrency limit and deadlines. */
  async runOnce(tasks: Task[]): Promise<void> {
    this.#slots.setDemand(demandOf(tasks));
    await Promise.all(tasks.map((t) => this.#runGuarded({ task: t, running: false, stopped: false, runs: 0 })));
  }

  /** How many times a task has finished: 0 until its first run ends. */
  runsOf(key: TaskKey): number {
    return this.#loops.get(key)?.runs ?? 0;
  }

  keys(): TaskKey[] {
    return this.#loops.keys();
  }

  /** Stop every loop, abort runs in flight, and wait for them to settle. */
  async stop(): Promise<void> {
    this.#stop.abort(new Error("ci-prober is stopping"));
    for (const loop of this.#loops.values()) this.#stopLoop(loop);
    this.#loops.clear();
    await Promise.allSettled([...this.#inFlight]);
  }

  /** Slots and shares as they are now (tests, /status). */
  slots(group: string): { share: number; running: number; waiting: number } {
    return { share: this.#slots.shareOf(group), running: this.#slots.runningOf(group), waiting: this.#slots.waiting() };
  }

  #startLoop(task: Task): void {
    const loop: Loop = { task, running: false, stopped: false, runs: 0 };
    this.#loops.set(task.key, loop);
    const first = Math.max(0, Math.round(task.firstRunMs ?? this.#jitter(task.intervalMs)));
    if (task.schedule !== undefined) {
      // A cron schedule: node-cron fires the ticks; one run at start so the first round completes.
      loop.cronTask = cron.schedule(task.schedule, () => this.#tick(loop), { noOverlap: false, name: keyText(task.key) });
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
      loop.timer = setTimeout(
        () => {
          this.#tick(loop);
          next();
        },
        Math.max(0, due - Date.now()),
      );
    };
    next();
  }

  #stopLoop(loop: Loop): void {
    loop.stopped = true;
    loop.cancel?.abort();
    if (loop.timer) clearTimeout(loop.timer);
    void loop.cronTask?.destroy();
  }

  #tick(loop: Loop): void {
    if (loop.stopped) return;
    if (loop.running) {
      const cause: SkipCause = loop.started === true ? "running" : "queued";
      this.#logger.warn({ task: keyText(loop.task.key), cause }, "probe skipped: previous run still queued or running");
      this.#onSkip?.(loop.task, cause);
      return;
    }
    const p = this.#runGuarded(loop);
    this.#inFlight.add(p);
    void p.finally(() => this.#inFlight.delete(p));
  }

  async #runGuarded(loop: Loop): Promise<void> {
    loop.running = true;
    loop.started = false;
    loop.cancel ??= new AbortController();
    const cancel = loop.cancel;
    // Stopping the scheduler takes queued runs out of the queue; the listener goes when the run ends.
    const onStop = () => cancel.abort();
    this.#stop.signal.addEventListener("abort", onStop, { once: true });
    const ran = await this.#slots.run(loop.task.group ?? "", cancel.signal, async () => {
      loop.started = true;
      // The task as it is now: a re-plan while the run waited may have given it a fresh closure.
      const { task } = loop;
      const limit = deadline(task.timeoutMs, this.#stop.signal);
      try {
        // Whatever secret a run makes is its own (see secret.ts), not the process's for ever.
        await withSecretScope(new Scrubber(), () => task.run(limit.signal));
      } catch (err) {
        this.#logger.error({ task: keyText(task.key), err: err instanceof Error ? err.message : String(err) }, "task failed");
      } finally {
        limit.dispose();
      }
    });
    this.#stop.signal.removeEventListener("abort", onStop);
    loop.running = false;
    loop.started = false;
    if (!ran) return;
    loop.runs++;
    this.#onRunEnd?.(loop.task.key);
  }
}

/** Each group's demand: its tasks' runs per second, so a 5-minute check weighs a fifth of a 1-minute probe. */
export function demandOf(tasks: Task[]): Map<string, number> {
  const demand = new Map<string, number>();
  for (const t of tasks) demand.set(t.group ?? "", (demand.get(t.group ?? "") ?? 0) + 1000 / Math.max(1, t.intervalMs));
  return demand;
}
