import { getEventListeners } from "node:events";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { deadline, deadlineOf, sleep, timeLeft, withDeadline } from "../../../src/deadline.js";

// Fake timers: these tests are about what the helper does at its time, not about how late a loaded
// machine runs a timer, and vi.getTimerCount() counts only the timers of the code under test (the
// process-wide "Timeout" resources also hold vitest's own, which come and go with its reporting).
beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

function timeouts(): number {
  return vi.getTimerCount();
}

function abortedWithin(signal: AbortSignal): Promise<{ reason: unknown; ms: number }> {
  const t0 = Date.now();
  return new Promise((done) => {
    signal.addEventListener("abort", () => done({ reason: signal.reason, ms: Date.now() - t0 }), { once: true });
  });
}

describe("deadline", () => {
  it("aborts at its time with a TimeoutError, and knows that time", async () => {
    const t0 = Date.now();
    const d = deadline(150);
    expect(d.at - t0).toBeGreaterThanOrEqual(150);
    expect(d.at - t0).toBeLessThan(200);
    expect(deadlineOf(d.signal)).toBe(d.at);
    const aborted = abortedWithin(d.signal);
    await vi.advanceTimersByTimeAsync(149);
    expect(d.signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    const { reason, ms } = await aborted;
    expect((reason as DOMException).name).toBe("TimeoutError");
    expect(ms).toBe(150);
    expect(d.remaining()).toBe(0);
  });

  it("clears its timer and leaves its parent's listeners as they were when disposed", () => {
    const parent = new AbortController();
    const before = timeouts();
    const ds = Array.from({ length: 50 }, () => deadline(60_000, parent.signal));
    expect(timeouts()).toBe(before + 50);
    expect(getEventListeners(parent.signal, "abort")).toHaveLength(50);
    for (const d of ds) d.dispose();
    expect(timeouts()).toBe(before);
    expect(getEventListeners(parent.signal, "abort")).toHaveLength(0);
    expect(ds.every((d) => !d.signal.aborted)).toBe(true);
  });

  it("follows its parent's abort and reason, then lets go of it", async () => {
    const parent = new AbortController();
    const d = deadline(60_000, parent.signal);
    const before = timeouts();
    parent.abort(new Error("ci-prober is stopping"));
    expect(d.signal.aborted).toBe(true);
    expect((d.signal.reason as Error).message).toBe("ci-prober is stopping");
    expect(timeouts()).toBe(before - 1);
    expect(getEventListeners(parent.signal, "abort")).toHaveLength(0);
  });

  it("is aborted at once under a parent that already is", () => {
    const parent = new AbortController();
    parent.abort(new Error("gone"));
    const before = timeouts();
    const d = deadline(60_000, parent.signal);
    expect(d.signal.aborted).toBe(true);
    expect(timeouts()).toBe(before);
  });

  it("takes the earlier time of its own and a parent deadline's", () => {
    const outer = deadline(1000);
    const inner = deadline(60_000, outer.signal);
    const shorter = deadline(100, outer.signal);
    expect(inner.at).toBe(outer.at);
    expect(shorter.at).toBeLessThan(outer.at);
    expect(timeLeft(inner.signal)).toBeLessThanOrEqual(1000);
    expect(timeLeft(new AbortController().signal)).toBe(Number.POSITIVE_INFINITY);
    for (const d of [outer, inner, shorter]) d.dispose();
  });

  it("withDeadline disposes when the work settles, also when it throws", async () => {
    const before = timeouts();
    await expect(withDeadline(60_000, undefined, () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(await withDeadline(60_000, undefined, (signal) => Promise.resolve(signal.aborted))).toBe(false);
    expect(timeouts()).toBe(before);
  });
});

describe("sleep", () => {
  it("waits its full time when the deadline is further", async () => {
    const d = deadline(5000);
    let done = false;
    const slept = sleep(100, d.signal).then(() => {
      done = true;
    });
    await vi.advanceTimersByTimeAsync(99);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await slept;
    expect(done).toBe(true);
    d.dispose();
  });

  it("is cut to the deadline: a 30 s backoff under a 200 ms deadline ends at 200 ms", async () => {
    const d = deadline(200);
    const t0 = Date.now();
    const slept = sleep(30_000, d.signal).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(200);
    const err = await slept;
    expect((err as DOMException).name).toBe("TimeoutError");
    expect(Date.now() - t0).toBe(200);
    expect(d.signal.aborted).toBe(true);
    expect(timeouts()).toBe(0);
  });

  it("leaves the signal aborted when it rejects at the deadline, even when it got there before the deadline's own timer", async () => {
    // Real timers: the race is between two real timers due in the same millisecond; no bound on time.
    vi.useRealTimers();
    const seen = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const outer = deadline(40 + (i % 5));
        const inner = deadline(60_000, outer.signal);
        const err = await sleep(10_000, inner.signal).catch((e: unknown) => e);
        return { name: (err as DOMException).name, aborted: inner.signal.aborted && outer.signal.aborted };
      }),
    );
    expect(seen.filter((s) => s.name !== "TimeoutError" || !s.aborted)).toEqual([]);
  });

  it("rejects at once with the reason of an abort, and leaves no timer", async () => {
    const stop = new AbortController();
    const before = timeouts();
    const p = sleep(60_000, stop.signal);
    stop.abort(new Error("stopping"));
    await expect(p).rejects.toThrow("stopping");
    expect(timeouts()).toBe(before);
    expect(getEventListeners(stop.signal, "abort")).toHaveLength(0);
    await expect(sleep(10, stop.signal)).rejects.toThrow("stopping");
  });
});
