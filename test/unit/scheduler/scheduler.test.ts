import { afterEach, describe, expect, test } from "vitest";
import { silentLogger } from "../../../src/log.js";
import { Scheduler, type Task } from "../../../src/scheduler.js";
import { taskKey, type TaskKey } from "../../../src/task-key.js";

const k = (target: string): TaskKey => taskKey("login", "runner-a", target);

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        reject(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
      },
      { once: true },
    );
  });

let scheduler: Scheduler | undefined;
afterEach(async () => {
  await scheduler?.stop();
  scheduler = undefined;
});

function make(concurrency: number): Scheduler {
  scheduler = new Scheduler({ concurrency, logger: silentLogger, jitter: () => 0 });
  return scheduler;
}

describe("Scheduler", () => {
  test("never overlaps a task with itself: a 250 ms run on a 100 ms interval skips ticks", async () => {
    const s = make(4);
    let inFlight = 0;
    let maxInFlight = 0;
    const starts: number[] = [];
    s.sync([
      {
        key: k("slow"),
        intervalMs: 100,
        timeoutMs: 5000,
        run: async (signal) => {
          inFlight++;
          maxInFlight = Math.max(maxInFlight, inFlight);
          starts.push(Date.now());
          await sleep(250, signal);
          inFlight--;
        },
      },
    ]);
    await sleep(1050);
    expect(maxInFlight).toBe(1);
    // A run starts only on a tick after the previous one ended: starts are at least 250 ms apart, on the 100 ms grid.
    const gaps = starts.slice(1).map((t, i) => t - (starts[i] ?? t));
    expect(gaps.length).toBeGreaterThanOrEqual(2);
    expect(gaps.every((g) => g >= 250)).toBe(true);
  });

  test("holds at most `concurrency` runs in flight across all tasks", async () => {
    const s = make(2);
    let inFlight = 0;
    let maxInFlight = 0;
    const tasks: Task[] = Array.from({ length: 5 }, (_, i) => ({
      key: k(`t${i}`),
      intervalMs: 10_000,
      timeoutMs: 5000,
      run: async (signal) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await sleep(100, signal);
        inFlight--;
      },
    }));
    const t0 = Date.now();
    await s.runOnce(tasks);
    expect(maxInFlight).toBe(2);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
  });

  test("aborts a run at its deadline with the run's signal", async () => {
    const s = make(1);
    let aborted = -1;
    const t0 = Date.now();
    await s.runOnce([
      {
        key: k("hang"),
        intervalMs: 10_000,
        timeoutMs: 300,
        run: async (signal) => {
          await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
          aborted = Date.now() - t0;
        },
      },
    ]);
    expect(aborted).toBeGreaterThanOrEqual(295);
    expect(aborted).toBeLessThan(600);
  });

  test("a stuck task holds only its own slot: another task keeps its 200 ms interval", async () => {
    const s = make(2);
    const stamps: number[] = [];
    s.sync([
      { key: k("stuck"), intervalMs: 200, timeoutMs: 60_000, run: (signal) => sleep(120_000, signal) },
      {
        key: k("healthy"),
        intervalMs: 200,
        timeoutMs: 1000,
        run: async () => {
          stamps.push(Date.now());
        },
      },
    ]);
    await sleep(2100);
    expect(stamps.length).toBeGreaterThanOrEqual(10);
    const gaps = stamps.slice(1).map((t, i) => t - (stamps[i] ?? t));
    expect(Math.max(...gaps)).toBeLessThan(300);
  });

  test("sync() stops tasks that disappeared and reports them", async () => {
    const s = make(2);
    let runs = 0;
    const task: Task = {
      key: k("gone"),
      intervalMs: 50,
      timeoutMs: 1000,
      run: async () => {
        runs++;
      },
    };
    expect(s.sync([task])).toEqual({ added: [k("gone")], removed: [] });
    await sleep(120);
    expect(s.sync([])).toEqual({ added: [], removed: [k("gone")] });
    const after = runs;
    await sleep(200);
    expect(runs).toBe(after);
    expect(s.keys()).toEqual([]);
  });

  test("stop() aborts runs in flight and waits for them", async () => {
    const s = make(1);
    let sawAbort = false;
    s.sync([
      {
        key: k("long"),
        intervalMs: 10_000,
        timeoutMs: 60_000,
        run: async (signal) => {
          await sleep(60_000, signal).catch(() => {
            sawAbort = true;
          });
        },
      },
    ]);
    await sleep(50);
    await s.stop();
    expect(sawAbort).toBe(true);
  });
});

describe("Scheduler groups", () => {
  test("tasks of one stuck group hold at most their share of the slots; other groups keep running", async () => {
    const s = make(2);
    const stamps: number[] = [];
    const stuck = (name: string): Task => ({
      key: k(name),
      group: "stuck-registry",
      intervalMs: 200,
      timeoutMs: 60_000,
      run: (signal) => sleep(120_000, signal),
    });
    s.sync([
      stuck("login"),
      stuck("pull"),
      {
        key: k("healthy"),
        group: "good-registry",
        intervalMs: 200,
        timeoutMs: 1000,
        run: async () => {
          stamps.push(Date.now());
        },
      },
    ]);
    await sleep(1500);
    expect(stamps.length).toBeGreaterThanOrEqual(7);
  });
});
