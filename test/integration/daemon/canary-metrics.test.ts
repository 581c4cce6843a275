import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { ciState, type CiState } from "../../fake-gitlab/pipelines.js";
import { startFakeGitlab, type FakeGitlab } from "../../fake-gitlab/server.js";
import { testSigningKey } from "../../helpers/gitlab.js";
import { startDaemonProc, waitFor, type DaemonProc } from "../../helpers/daemon.js";
import { tempDir } from "../../helpers/fixtures.js";
import { select, value } from "../../helpers/metrics.js";
import { freePort } from "../../services/procs.js";

// The daemon runs the GitLab canary on its own schedule and turns each job's
// runner into its own series: the page says which runner broke CI.

let fake: FakeGitlab;
let ci: CiState;
let daemon: DaemonProc;
let token: string;
const PROJECT = "ci/canary";

beforeAll(async () => {
  fake = await startFakeGitlab(testSigningKey());
  ci = ciState(fake.state);
  fake.state.addUser({ username: "project_7_bot_canary", bot: true });
  token = fake.state.issueApiToken("project_7_bot_canary");
  ci.addProject({
    path: PROJECT,
    jobs: [
      { name: "canary-docker", tags: ["docker"] },
      { name: "canary-base", tags: ["base"] },
    ],
  });
  ci.addRunner({ description: "docker-ci", tags: ["docker"], behaviour: { kind: "succeed", pickupMs: 200, runMs: 100 } });
  ci.addRunner({ description: "base-runner", tags: ["base"], behaviour: { kind: "succeed", pickupMs: 100, runMs: 100 } });
  const dir = tempDir("canary-metrics");
  const tokenFile = join(dir, "token");
  writeFileSync(tokenFile, `${token}\n`);
  const port = await freePort();
  const file = join(dir, "ci-prober.yml");
  writeFileSync(
    file,
    `listen_address: 127.0.0.1:${port}\ncanary:\n  gitlab: {url: "${fake.url}", project: ${PROJECT}, ref: main, token_file: ${tokenFile}, interval: 1s, timeout: 20s}\n`,
  );
  daemon = await startDaemonProc(file, port);
});

afterAll(async () => {
  await daemon?.stop();
  ci?.close();
  await fake?.close();
});

test("each job's runner gets its own canary series; a failing runner reads 0 with reason pipeline_failed and the other stays 1", async () => {
  const ok = await waitFor("first canary", 15_000, async () => {
    const m = await daemon.metrics();
    return select(m, "ci_prober_canary_success", { canary: PROJECT }).length === 2 ? m : undefined;
  });
  expect(value(ok, "ci_prober_canary_success", { runner: "docker-ci", canary: PROJECT })).toBe(1);
  expect(value(ok, "ci_prober_canary_success", { runner: "base-runner", canary: PROJECT })).toBe(1);
  expect(value(ok, "ci_prober_canary_queued_seconds", { runner: "docker-ci", canary: PROJECT })).toBeGreaterThanOrEqual(0.19);
  expect(value(ok, "ci_prober_canary_duration_seconds_count", { runner: "base-runner", canary: PROJECT })).toBeGreaterThanOrEqual(1);

  const base = [...ci.runners.values()].find((r) => r.description === "base-runner");
  if (!base) throw new Error("no base-runner in the fake");
  base.behaviour = {
    kind: "fail",
    failureReason: "runner_system_failure",
    trace:
      'Running with gitlab-runner 17.5.0\nWARNING: Failed to pull image with policy "always": unauthorized: HTTP Basic: Access denied (manager.go:250:0s)\nERROR: Job failed: failed to pull image\n',
    pickupMs: 50,
    runMs: 50,
  };
  const failed = await waitFor("base-runner canary at 0", 20_000, async () => {
    const m = await daemon.metrics();
    return value(m, "ci_prober_canary_success", { runner: "base-runner", canary: PROJECT }) === 0 ? m : undefined;
  });
  expect(value(failed, "ci_prober_canary_success", { runner: "docker-ci", canary: PROJECT })).toBe(1);
  expect(
    value(failed, "ci_prober_probe_failures_total", { probe: "canary", runner: "base-runner", target: PROJECT, reason: "pipeline_failed" }),
  ).toBeGreaterThanOrEqual(1);
  expect(select(failed, "ci_prober_probe_failures_total", { runner: "docker-ci" })).toEqual([]);
  // Each failure is counted once, under the runner that ran the job, not again under the pipeline.
  expect(select(failed, "ci_prober_probe_failures_total").map((s) => s.labels.runner)).toEqual(["base-runner"]);
  expect(
    value(failed, "ci_prober_probe_last_run_timestamp_seconds", { probe: "canary", runner: "gitlab", target: PROJECT }),
  ).toBeGreaterThan(Date.now() / 1000 - 30);

  const status = JSON.parse((await daemon.get("/status")).body) as {
    probes: { key: string; last: { error: string; jobs: { runner: string; errorLine?: string }[] } }[];
  };
  const canary = status.probes.find((p) => p.key === `canary|gitlab|${PROJECT}`)?.last;
  expect(canary?.jobs.find((j) => j.runner === "base-runner")?.errorLine).toBe(
    'WARNING: Failed to pull image with policy "always": unauthorized: HTTP Basic: Access denied (manager.go:250:0s)',
  );
  expect(canary?.error).toContain("runner_system_failure");
  expect(JSON.stringify(status).includes(token)).toBe(false);
  expect(daemon.log().includes(token)).toBe(false);
});
