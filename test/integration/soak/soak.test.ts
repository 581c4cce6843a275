import { expect, inject, test } from "vitest";
import { formatSoak, runSoak } from "../../../bench/soak.js";

const services = inject("services");

// The short soak (npm run soak runs it for 5 minutes): an aged daemon at a 1 s interval against
// both real registries, the token registry's GitLab user blocked and unblocked every 5 s. Nothing
// it holds may trend up after the warm-up, and it may log no error.
test("short soak: heap after GC, RSS, fds, timers, series and /metrics latency stay flat for 45 s", async () => {
  const report = await runSoak({ durationMs: 45_000, warmupMs: 15_000, sampleMs: 1000, revokeEveryMs: 5000, services });
  const summary = formatSoak(report);
  expect(
    report.trends.filter((t) => t.grew).map((t) => t.name),
    summary,
  ).toEqual([]);
  expect(report.errors, summary).toEqual([]);
  expect(report.rounds, summary).toBeGreaterThanOrEqual(30);
  expect(report.revocations, summary).toBeGreaterThanOrEqual(4);
  // Blocked, the token runner fails (or holds off its refused secret); unblocked, it passes again.
  expect(report.results.failed + report.results.backingOff, summary).toBeGreaterThan(0);
  expect(report.results.succeeded, summary).toBeGreaterThan(report.rounds);
}, 120_000);
