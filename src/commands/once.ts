import type { Config } from "../config/resolve.js";
import { withDeadline } from "../deadline.js";
import { createLogger } from "../log.js";
import { plan } from "../plan.js";
import { Scheduler } from "../scheduler.js";
import type { TaskKey } from "../task-key.js";
import type { ProbeResult } from "../types.js";
import { table } from "./table.js";

/**
 * One round of every probe. 0 all passed, 1 any failed or a runner's source could not be read
 * (a finding, not bad input: exit 2 is for ci-prober's own config, which main() reports).
 */
export async function onceCommand(config: Config, json: boolean): Promise<number> {
  const logger = createLogger(process.env.CI_PROBER_LOG_LEVEL ?? "warn");
  const results: ProbeResult[] = [];
  // `once` plans no checks: only probe results arrive, and they go into the table.
  const sink = { probe: (_key: TaskKey, r: ProbeResult) => results.push(r), checks: () => undefined, cert: () => undefined };
  const planMs = Math.max(config.timeoutMs, config.helperTimeoutMs) * 2;
  const p = await withDeadline(planMs, undefined, (signal) => plan({ config, logger, sink, signal }));
  const scheduler = new Scheduler({ concurrency: config.concurrency, logger });
  await scheduler.runOnce(p.tasks);
  results.sort((a, b) => a.runner.localeCompare(b.runner) || a.probe.localeCompare(b.probe) || a.target.localeCompare(b.target));
  if (json) {
    const rows = results.map((r) => ({
      probe: r.probe,
      runner: r.runner,
      target: r.target,
      success: r.success,
      reason: r.reason ?? null,
      duration_seconds: Math.round(r.durationSeconds * 1000) / 1000,
      error: r.error ?? null,
    }));
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
  } else {
    process.stdout.write(
      table(
        ["RUNNER", "PROBE", "TARGET", "RESULT", "DURATION", "ERROR"],
        results.map((r) => [
          r.runner,
          r.probe,
          r.target,
          r.success ? "ok" : (r.reason ?? "failed"),
          `${r.durationSeconds.toFixed(3)}s`,
          r.error ?? "",
        ]),
      ),
    );
  }
  for (const e of p.errors) process.stderr.write(`ci-prober: ${e}\n`);
  if (p.errors.length > 0) return 1;
  return results.every((r) => r.success) ? 0 : 1;
}
