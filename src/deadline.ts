/*
 * The one deadline primitive. Node 20 holds an `AbortSignal.timeout()` signal
 * only weakly, also inside `AbortSignal.any()`: once nothing else references it,
 * the next GC collects it and the deadline never fires (nodejs/node#57736). A
 * Deadline is a real setTimeout whose closure holds the controller, so the
 * timer list keeps it alive until dispose() clears it; a parent signal is
 * followed with a listener that dispose() removes, so nothing outlives the work.
 */
import { setMaxListeners } from "node:events";

/** A signal that aborts at a time (or when its parent does), and the time it aborts at. */
export interface Deadline {
  readonly signal: AbortSignal;
  /** Epoch milliseconds at which the signal aborts (the earlier of its own and its parent's). */
  readonly at: number;
  /** Milliseconds left before `at`; 0 once passed. */
  remaining(): number;
  /** Clear the timer and stop following the parent. Idempotent; call it when the guarded work settles. */
  dispose(): void;
}

interface Known {
  at: number;
  /** Abort now as the timer would: for a waiter that reached the time first, so it never sees the signal unaborted past `at`. */
  expire: () => void;
}

// The abort time of every live deadline signal, so sleep() and children can cut to it. Weak: a key
// is only held while its Deadline is, and the Deadline is held by its own timer until disposed.
const deadlines = new WeakMap<AbortSignal, Known>();

/** The abort reason of a passed deadline: the same name `AbortSignal.timeout()` uses, so classify() reads `timeout`. */
export function timeoutError(ms: number): DOMException {
  return new DOMException(`The operation timed out after ${ms} ms`, "TimeoutError");
}

/** A deadline `ms` from now, aborting early when `parent` aborts. Dispose it when the work settles. */
export function deadline(ms: number, parent?: AbortSignal): Deadline {
  const controller = new AbortController();
  const own = Date.now() + Math.max(0, ms);
  const inherited = parent ? deadlines.get(parent) : undefined;
  const at = Math.min(own, inherited?.at ?? Number.POSITIVE_INFINITY);
  const onParentAbort = () => finish(parent?.reason);
  let timer: NodeJS.Timeout | undefined;
  let done = false;
  function finish(reason: unknown): void {
    if (done) return;
    done = true;
    if (timer !== undefined) clearTimeout(timer);
    parent?.removeEventListener("abort", onParentAbort);
    if (reason !== undefined) controller.abort(reason);
  }
  const expire = () => (inherited !== undefined && inherited.at <= own ? inherited.expire() : finish(timeoutError(ms)));
  deadlines.set(controller.signal, { at, expire });
  // Many runs follow one stop signal at once (one listener each, removed on dispose): not a leak, so no warning.
  setMaxListeners(0, controller.signal, ...(parent ? [parent] : []));
  if (parent?.aborted) {
    finish(parent.reason);
  } else {
    parent?.addEventListener("abort", onParentAbort, { once: true });
    timer = setTimeout(() => finish(timeoutError(ms)), Math.max(0, own - Date.now()));
  }
  return {
    signal: controller.signal,
    at,
    remaining: () => Math.max(0, at - Date.now()),
    dispose: () => finish(undefined),
  };
}

/** Run `work` under a deadline of `ms` (and `parent`), disposing it when the work settles. */
export async function withDeadline<T>(ms: number, parent: AbortSignal | undefined, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const d = deadline(ms, parent);
  try {
    return await work(d.signal);
  } finally {
    d.dispose();
  }
}

/** The abort time of a deadline signal; +Infinity for any other signal (a stop signal has no time). */
export function deadlineOf(signal: AbortSignal): number {
  return deadlines.get(signal)?.at ?? Number.POSITIVE_INFINITY;
}

/** Milliseconds left before the signal's deadline; +Infinity when it has none. */
export function timeLeft(signal: AbortSignal): number {
  return Math.max(0, deadlineOf(signal) - Date.now());
}

/**
 * Wait `ms`, cut to the signal's deadline: a wait that would end after it
 * rejects when the deadline passes (with the signal's reason, or a
 * TimeoutError), never later. Rejects at once when the signal aborts.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const left = signal ? timeLeft(signal) : Number.POSITIVE_INFINITY;
    const cut = left < ms;
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal));
    };
    const timer = setTimeout(
      () => {
        signal?.removeEventListener("abort", onAbort);
        if (!cut) {
          resolve();
          return;
        }
        // Reached the deadline before its own timer fired (same millisecond): abort it now, so the
        // caller finds its signal aborted, as it would a moment later.
        if (signal && !signal.aborted) deadlines.get(signal)?.expire();
        reject(signal?.aborted ? abortReason(signal) : timeoutError(ms));
      },
      Math.max(0, cut ? left : ms),
    );
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function abortReason(signal: AbortSignal | undefined): unknown {
  const reason: unknown = signal?.reason;
  return reason ?? new DOMException("This operation was aborted", "AbortError");
}
