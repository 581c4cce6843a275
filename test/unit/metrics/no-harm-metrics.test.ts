import { describe, expect, test } from "vitest";
import { Metrics } from "../../../src/metrics/index.js";
import { pullSeries } from "../../../src/probes/index.js";
import { taskKey } from "../../../src/task-key.js";
import type { ProbeResult } from "../../../src/types.js";
import { metricSamples, probeResult, select } from "../../helpers/metrics.js";

const IMAGE = "registry.example.jp/ci/a:1";
const KEY = taskKey("pull", "r1", IMAGE);

function pull(over: Partial<ProbeResult>): ProbeResult {
  return probeResult({ probe: "pull", target: IMAGE, ...over });
}

const samples = metricSamples;

describe("no-harm metrics", () => {
  test("pull_bytes is one series per runner and image whose pull label says which kind ran last", async () => {
    const m = new Metrics();
    pullSeries(m, KEY, pull({ bytes: 1234, pull: "full" }));
    pullSeries(m, KEY, pull({ bytes: 0, pull: "manifest" }));
    expect(select(await samples(m), "ci_prober_pull_bytes").map((x) => [x.labels, x.value])).toEqual([
      [{ runner: "r1", image: IMAGE, pull: "manifest" }, 0],
    ]);
    pullSeries(m, KEY, pull({ bytes: 99, pull: "full" }));
    expect(select(await samples(m), "ci_prober_pull_bytes").map((x) => [x.labels, x.value])).toEqual([
      [{ runner: "r1", image: IMAGE, pull: "full" }, 99],
    ]);
    m.drop(KEY);
    expect(select(await samples(m), "ci_prober_pull_bytes")).toEqual([]);
  });

  test("a result held by the backoff reads 0, counts its reason and stamps the last run, without a duration", async () => {
    const m = new Metrics();
    const held = pull({
      success: false,
      reason: "unauthorized",
      durationSeconds: 0,
      startedAt: 1_800_000_060_000,
      backoff: { nextAttemptAt: 1_800_000_120_000, failures: 2 },
    });
    pullSeries(m, KEY, held);
    const s = await samples(m);
    expect(select(s, "ci_prober_pull_success").map((x) => x.value)).toEqual([0]);
    expect(select(s, "ci_prober_probe_failures_total").map((x) => [x.labels.reason, x.value])).toEqual([["unauthorized", 1]]);
    expect(select(s, "ci_prober_probe_last_run_timestamp_seconds").map((x) => x.value)).toEqual([1_800_000_060]);
    expect(select(s, "ci_prober_pull_duration_seconds_count")).toEqual([]);
  });

  test("rate-limit gauges per registry and GitLab requests by route template and code", async () => {
    const m = new Metrics();
    m.setRateLimit("docker.io", { limit: 100, remaining: 76 });
    m.setRateLimit("docker.io", { remaining: 75 });
    m.countGitlabRequest("GET /api/v4/users/:id", "200");
    m.countGitlabRequest("GET /api/v4/users/:id", "200");
    m.countGitlabRequest("GET /api/v4/personal_access_tokens/self", "401");
    const s = await samples(m);
    expect(select(s, "ci_prober_registry_rate_limit_limit").map((x) => [x.labels, x.value])).toEqual([[{ registry: "docker.io" }, 100]]);
    expect(select(s, "ci_prober_registry_rate_limit_remaining").map((x) => [x.labels, x.value])).toEqual([[{ registry: "docker.io" }, 75]]);
    expect(select(s, "ci_prober_gitlab_requests_total").map((x) => [x.labels, x.value])).toEqual([
      [{ endpoint: "GET /api/v4/users/:id", code: "200" }, 2],
      [{ endpoint: "GET /api/v4/personal_access_tokens/self", code: "401" }, 1],
    ]);
  });
});
