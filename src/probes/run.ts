import { oneLine } from "../errors.js";
import { Scrubber, withSecretScope } from "../secret.js";
import type { ProbeKind, ProbeResult } from "../types.js";
import { classify } from "./classify.js";
import type { ProbeContext, ProbeOutcome } from "./types.js";

/**
 * Run a probe body and turn whatever happens into a ProbeResult: the body may
 * throw; this never does. The reason comes from classify() alone.
 */
export function runProbe(kind: ProbeKind, ctx: ProbeContext, body: (ctx: ProbeContext) => Promise<ProbeOutcome>): Promise<ProbeResult> {
  // The probe's tokens and headers are its own: scrubbed from its lines, forgotten when it ends.
  return withSecretScope(new Scrubber(), () => runScoped(kind, ctx, body));
}

async function runScoped(kind: ProbeKind, ctx: ProbeContext, body: (ctx: ProbeContext) => Promise<ProbeOutcome>): Promise<ProbeResult> {
  const startedAt = Date.now();
  const t0 = performance.now();
  const base = { probe: kind, runner: ctx.runner.name, target: ctx.target, startedAt };
  try {
    const outcome = await body(ctx);
    ctx.signal.throwIfAborted();
    ctx.log.step("success");
    return { ...base, ...outcome, success: true, durationSeconds: (performance.now() - t0) / 1000, log: ctx.log.lines };
  } catch (err) {
    const reason = classify(err, ctx.signal);
    const error = ctx.signal.aborted && reason === "timeout" && !(err instanceof Error && /timeout|timed out/i.test(err.message))
      ? `timed out after ${Math.round(performance.now() - t0)}ms (${oneLine(err)})`
      : oneLine(err);
    ctx.log.step(`failed: ${reason}: ${error}`);
    const outcome = (err as { outcome?: ProbeOutcome } | undefined)?.outcome ?? {};
    return { ...base, ...outcome, success: false, reason, error, durationSeconds: (performance.now() - t0) / 1000, log: ctx.log.lines };
  }
}
