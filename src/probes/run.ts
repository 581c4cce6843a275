import { oneLine } from "../errors.js";
import { Scrubber, withSecretScope } from "../secret.js";
import type { ProbeKind, ProbeResult } from "../types.js";
import { classify } from "./classify.js";
import { ProbeRecorder, type ProbeBodyContext, type ProbeContext } from "./types.js";

/**
 * Run a probe body and turn whatever happens into a ProbeResult: the body may
 * throw; this never does. The reason comes from classify() alone; what the
 * body recorded before it ended (a credential, stages, jobs) is on the result
 * either way, and so is any credential it looked up.
 */
export function runProbe<S>(
  kind: ProbeKind,
  ctx: ProbeContext<S>,
  body: (ctx: ProbeBodyContext<S>) => Promise<void>,
): Promise<ProbeResult> {
  // The probe's tokens and headers are its own: scrubbed from its lines, forgotten when it ends.
  return withSecretScope(new Scrubber(), () => runScoped(kind, ctx, body));
}

async function runScoped<S>(
  kind: ProbeKind,
  ctx: ProbeContext<S>,
  body: (ctx: ProbeBodyContext<S>) => Promise<void>,
): Promise<ProbeResult> {
  const startedAt = Date.now();
  const t0 = performance.now();
  const record = new ProbeRecorder();
  const bodyCtx: ProbeBodyContext<S> = {
    ...ctx,
    record,
    credentialFor: async (registry) => {
      const used = await ctx.credentialFor(registry);
      if (used) record.credential(used);
      return used;
    },
  };
  const base = { probe: kind, runner: ctx.runner.name, target: ctx.target, startedAt };
  try {
    await body(bodyCtx);
    ctx.signal.throwIfAborted();
    ctx.log.step("success");
    return { ...base, ...record.partial, success: true, durationSeconds: (performance.now() - t0) / 1000, log: ctx.log.lines };
  } catch (err) {
    const reason = classify(err, ctx.signal);
    const error =
      ctx.signal.aborted && reason === "timeout" && !(err instanceof Error && /timeout|timed out/i.test(err.message))
        ? `timed out after ${Math.round(performance.now() - t0)}ms (${oneLine(err)})`
        : oneLine(err);
    ctx.log.step(`failed: ${reason}: ${error}`);
    return {
      ...base,
      ...record.partial,
      success: false,
      reason,
      error,
      durationSeconds: (performance.now() - t0) / 1000,
      log: ctx.log.lines,
    };
  }
}
