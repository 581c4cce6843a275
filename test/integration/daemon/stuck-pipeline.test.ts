import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { ciState, type CiState } from "../../fake-gitlab/pipelines.js";
import { startFakeGitlab, type FakeGitlab } from "../../fake-gitlab/server.js";
import { AGED_ENV, logRecords, startDaemonProc, type DaemonProc } from "../../helpers/daemon.js";
import { testSigningKey } from "../../helpers/gitlab.js";
import { tempDir } from "../../helpers/fixtures.js";
import { select } from "../../helpers/metrics.js";
import { freePort } from "../../services/procs.js";

// A canary pipeline no runner picks up, in an aged daemon (gc() every 150 ms). Before src/deadline.ts
// the deadline was collected, the poll backoff grew to 30 s and a run lasted until the scheduler's deadline (35 s). Now
// every run must end as pipeline_timeout at its timeout (the 2 s, 3 s, 4.5 s polls cut to it) and
// cancel its pipeline.
const PROJECT = "ci/canary-unpicked";
const TIMEOUT_S = 5;
const WINDOW_MS = 32_000;

let fake: FakeGitlab;
let ci: CiState;
let daemon: DaemonProc;

beforeAll(async () => {
  fake = await startFakeGitlab(testSigningKey());
  ci = ciState(fake.state);
  fake.state.addUser({ username: "project_9_bot_canary", bot: true });
  const token = fake.state.issueApiToken("project_9_bot_canary");
  ci.addProject({
    path: PROJECT,
    jobs: [{ name: "canary-nobody", tags: ["no-runner-has-this-tag"] }],
    members: { project_9_bot_canary: "maintainer" },
  });
  const dir = tempDir("stuck-pipeline");
  const tokenFile = join(dir, "token");
  writeFileSync(tokenFile, `${token}\n`);
  const port = await freePort();
  const file = join(dir, "ci-prober.yml");
  const canary = `{url: "${fake.url}", project: ${PROJECT}, ref: main, token_file: ${tokenFile}, interval: 1s, timeout: ${TIMEOUT_S}s}`;
  writeFileSync(file, `listen_address: 127.0.0.1:${port}\ncanary:\n  gitlab: ${canary}\n`);
  daemon = await startDaemonProc(file, port, AGED_ENV);
});

afterAll(async () => {
  await daemon?.stop();
  ci?.close();
  await fake?.close();
});

test("aged: every run of an unpicked pipeline is pipeline_timeout within timeout + 2 s, and every pipeline is cancelled", async () => {
  await new Promise((r) => setTimeout(r, WINDOW_MS));
  const m = await daemon.metrics();
  const failures = logRecords(daemon.log()).filter((r) => r.msg === "probe failed" && r.probe === "canary");
  const project = ci.findProject(PROJECT);
  const pipelines = [...ci.pipelines.values()].filter((p) => p.projectId === project?.id).sort((a, b) => a.id - b.id);

  // About one run per timeout + the 1 s tick: at least 4 in 32 s, each ended at its deadline. A lost
  // deadline (AbortSignal.timeout() inside AbortSignal.any(), collected by the aged gc()) ends no run
  // here: the first one hangs until the scheduler's own deadline (timeout + 30 s), past the window.
  const ended = failures.map((f) => `${String(f.reason)} ${String(f.duration_seconds)}s`).join(", ");
  const seen = `${failures.length} runs ended (${ended}); ${pipelines.length} pipelines`;
  expect(failures.length, seen).toBeGreaterThanOrEqual(4);
  expect(failures.map((f) => f.reason)).toEqual(failures.map(() => "pipeline_timeout"));
  expect(failures.filter((f) => Number(f.duration_seconds) < TIMEOUT_S - 0.5 || Number(f.duration_seconds) > TIMEOUT_S + 2)).toEqual([]);
  const ids = failures.map((f) => Number(/^pipeline (\d+) /.exec(String(f.error))?.[1]));
  expect(failures.map((f) => f.error)).toEqual(
    ids.map((id) => `pipeline ${id} did not finish within ${TIMEOUT_S}s; no runner picked up canary-nobody; canceled`),
  );

  // Each run created its own pipeline and cancelled it; at most the one in flight now is still pending.
  expect(ids).toEqual(pipelines.slice(0, ids.length).map((p) => p.id));
  expect(pipelines.length - ids.length).toBeLessThanOrEqual(1);
  for (const id of ids) {
    expect(pipelines.find((p) => p.id === id)?.status).toBe("canceled");
    const cancels = ci.requests.filter(
      (r) => r.method === "POST" && r.path === `/api/v4/projects/${encodeURIComponent(PROJECT)}/pipelines/${id}/cancel`,
    );
    expect(cancels.map((r) => r.status)).toEqual([200]);
  }
  const counted = select(m, "ci_prober_probe_failures_total", { probe: "canary", reason: "pipeline_timeout" }).reduce(
    (n, s) => n + s.value,
    0,
  );
  expect(counted).toBeGreaterThanOrEqual(failures.length - 1);
}, 90_000);
