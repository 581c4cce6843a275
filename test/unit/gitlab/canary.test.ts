import { afterAll, beforeAll, describe, expect, test, vi } from "vitest";
import { gitlabCanary } from "../../../src/probes/canary-gitlab.js";
import { Secret } from "../../../src/secret.js";
import type { ProbeResult } from "../../../src/types.js";
import { ciState, pullFailureLines, type CiState, type FakeJob, type FakePipeline } from "../../fake-gitlab/pipelines.js";
import { startFakeGitlab, type FakeGitlab } from "../../fake-gitlab/server.js";
import { canaryContext, testSigningKey } from "../../helpers/gitlab.js";
import { expectLogLine } from "../../helpers/log.js";

let fake: FakeGitlab;
let ci: CiState;
let token: string;

beforeAll(async () => {
  fake = await startFakeGitlab(testSigningKey());
  ci = ciState(fake.state);
  fake.state.addUser({ username: "project_1_bot_canary", bot: true });
  token = fake.state.issueApiToken("project_1_bot_canary");
});

afterAll(async () => {
  ci.close();
  await fake.close();
});

/** What the fake itself reports for a job: the exact values the canary must carry over. */
function fakeTiming(job: FakeJob) {
  const s = (from: number | null, to: number | null) => (from === null || to === null ? null : Math.round((to - from) / 10) / 100);
  return { queuedSeconds: s(job.queuedAt, job.startedAt), durationSeconds: s(job.startedAt, job.finishedAt) };
}

function expectNoSecret(result: ProbeResult, logLines: string[], ...secrets: string[]) {
  const text = JSON.stringify(result) + logLines.join("\n");
  for (const secret of secrets) expect(text).not.toContain(secret);
}

function pipelinesOf(path: string) {
  const project = ci.findProject(path);
  return [...ci.pipelines.values()].filter((p) => p.projectId === project?.id);
}

describe("gitlab canary", () => {
  test("a pipeline whose jobs all succeed reports success with each job's runner, queue time, duration and status", async () => {
    ci.addProject({
      path: "ci/canary-ok",
      jobs: [
        { name: "canary-a", tags: ["ok-a"] },
        { name: "canary-b", tags: ["ok-b"] },
      ],
    });
    ci.addRunner({ description: "runner-a", tags: ["ok-a"], behaviour: { kind: "succeed", pickupMs: 300, runMs: 200 } });
    ci.addRunner({ description: "runner-b", tags: ["ok-b"], behaviour: { kind: "succeed", pickupMs: 100, runMs: 400 } });
    const { ctx, logLines } = canaryContext(fake.url, "ci/canary-ok", {
      token: new Secret(token),
      variables: { CANARY_IMAGE: "ci/canary:latest" },
    });

    const result = await gitlabCanary(ctx);

    const [pipeline] = pipelinesOf("ci/canary-ok");
    if (!pipeline) throw new Error("no pipeline was created");
    const [a, b] = pipeline.jobs;
    if (!a || !b) throw new Error("jobs missing");
    expect(result).toMatchObject({ probe: "canary", runner: "gitlab", target: "ci/canary-ok", success: true });
    expect(result.reason).toBeUndefined();
    expect(result.jobs).toEqual([
      { id: a.id, name: "canary-a", status: "success", runner: "runner-a", failureReason: null, ...fakeTiming(a) },
      { id: b.id, name: "canary-b", status: "success", runner: "runner-b", failureReason: null, ...fakeTiming(b) },
    ]);
    expect(fakeTiming(a).queuedSeconds).toBeGreaterThanOrEqual(0.28);
    expect(fakeTiming(b).durationSeconds).toBeGreaterThanOrEqual(0.38);
    expect(result.queuedSeconds).toBe(Math.max(fakeTiming(a).queuedSeconds ?? 0, fakeTiming(b).queuedSeconds ?? 0));
    expect(pipeline.source).toBe("api");
    expect(pipeline.variables).toEqual([
      { key: "CANARY_IMAGE", value: "ci/canary:latest", variable_type: "env_var" },
      { key: "CI_PROBER_CANARY", value: "1", variable_type: "env_var" },
    ]);
    expectLogLine(result.log, {
      endsWith: `created pipeline ${pipeline.id} on ci/canary-ok@main (created) ${fake.url}/ci/canary-ok/-/pipelines/${pipeline.id}`,
    });
    expectNoSecret(result, logLines, token);
  });

  test("a job failing with runner_system_failure reports pipeline_failed with the pull error line of its trace, exactly", async () => {
    const image = "127.0.0.1:5999/ci/canary:latest";
    const daemon = `Error response from daemon: Head "http://127.0.0.1:5999/v2/ci/canary/manifests/latest": unauthorized: HTTP Basic: Access denied`;
    const trace =
      "\x1b[0KRunning with gitlab-runner 17.5.0 (66a723c3)\x1b[0;m\n" +
      '\x1b[0Ksection_start:1732700000:prepare_executor\r\x1b[0K\x1b[0K\x1b[36;1mPreparing the "docker" executor\x1b[0;m\n' +
      `\x1b[0KPulling docker image ${image} ...\x1b[0;m\n` +
      pullFailureLines(image, daemon);
    ci.addProject({ path: "ci/canary-fail", jobs: [{ name: "canary-blocked", tags: ["fail-a"] }] });
    ci.addRunner({
      description: "runner-blocked",
      tags: ["fail-a"],
      behaviour: { kind: "fail", failureReason: "runner_system_failure", trace, pickupMs: 50, runMs: 100 },
    });
    const { ctx, logLines } = canaryContext(fake.url, "ci/canary-fail", { token: new Secret(token) });

    const result = await gitlabCanary(ctx);

    const [pipeline] = pipelinesOf("ci/canary-fail");
    const job = pipeline?.jobs[0];
    if (!pipeline || !job) throw new Error("no pipeline was created");
    const errorLine = `WARNING: Failed to pull image with policy "always": ${daemon} (manager.go:250:0s)`;
    expect(result.success).toBe(false);
    expect(result.reason).toBe("pipeline_failed");
    expect(result.error).toBe(`pipeline ${pipeline.id} failed: job canary-blocked on runner-blocked: runner_system_failure: ${errorLine}`);
    expect(result.jobs).toEqual([
      {
        id: job.id,
        name: "canary-blocked",
        status: "failed",
        runner: "runner-blocked",
        failureReason: "runner_system_failure",
        errorLine,
        ...fakeTiming(job),
      },
    ]);
    expectLogLine(result.log, {
      includes: `job ${job.id} canary-blocked on runner-blocked: failed (runner_system_failure)`,
      endsWith: errorLine,
    });
    const warn = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === "gitlab canary job failed");
    expect(warn).toMatchObject({
      level: "warn",
      project: "ci/canary-fail",
      job: job.id,
      runner: "runner-blocked",
      failureReason: "runner_system_failure",
      errorLine,
    });
    expectNoSecret(result, logLines, token);
  });

  test("a pipeline stuck in pending (no runner) times out, is cancelled and reported as pipeline_timeout", async () => {
    ci.addProject({ path: "ci/canary-stuck", jobs: [{ name: "canary-nobody", tags: ["no-runner-has-this-tag"] }] });
    const { ctx, logLines } = canaryContext(fake.url, "ci/canary-stuck", { token: new Secret(token), timeoutMs: 1500 });

    const t0 = performance.now();
    const result = await gitlabCanary(ctx);
    const elapsed = performance.now() - t0;

    const [pipeline] = pipelinesOf("ci/canary-stuck");
    const job = pipeline?.jobs[0];
    if (!pipeline || !job) throw new Error("no pipeline was created");
    expect(result.reason).toBe("pipeline_timeout");
    expect(result.error).toBe(`pipeline ${pipeline.id} did not finish within 1s500ms; no runner picked up canary-nobody; canceled`);
    expect(
      ci.requests
        .filter((r) => r.method === "POST" && r.path === `/api/v4/projects/ci%2Fcanary-stuck/pipelines/${pipeline.id}/cancel`)
        .map((r) => r.status),
    ).toEqual([200]);
    expect(pipeline.status).toBe("canceled");
    expect(job.status).toBe("canceled");
    expect(result.jobs).toHaveLength(1);
    expect(result.jobs?.[0]).toMatchObject({
      id: job.id,
      name: "canary-nobody",
      status: "pending",
      runner: null,
      durationSeconds: null,
      failureReason: null,
    });
    // It waited from shortly after creation until the timeout: most of the 1.5 s, never more than the run took.
    expect(result.jobs?.[0]?.queuedSeconds).toBeGreaterThanOrEqual(1.0);
    expect(result.jobs?.[0]?.queuedSeconds).toBeLessThanOrEqual(elapsed / 1000);
    expect(result.queuedSeconds).toBe(result.jobs?.[0]?.queuedSeconds);
    expect(elapsed).toBeGreaterThanOrEqual(1500);
    expect(elapsed).toBeLessThan(4000);
    expectNoSecret(result, logLines, token);
  });

  test("a timed-out pipeline the token may not cancel (403) is still reported as pipeline_timeout, saying the cancel failed", async () => {
    fake.state.addUser({ username: "reporter-stuck" });
    const reporterToken = fake.state.issueApiToken("reporter-stuck");
    const project = ci.addProject({
      path: "ci/canary-stuck-403",
      jobs: [{ name: "canary-nobody", tags: ["no-runner-has-this-tag"] }],
      members: { "reporter-stuck": "reporter" },
    });
    const triggerToken = ci.addTriggerToken(project);
    const { ctx } = canaryContext(fake.url, "ci/canary-stuck-403", {
      token: new Secret(reporterToken),
      triggerToken: new Secret(triggerToken),
      timeoutMs: 500,
    });

    const result = await gitlabCanary(ctx);

    const [pipeline] = pipelinesOf("ci/canary-stuck-403");
    expect(result.reason).toBe("pipeline_timeout");
    expect(result.error).toBe(`pipeline ${pipeline?.id} did not finish within 500ms; no runner picked up canary-nobody; cancel failed`);
    expectLogLine(result.log, {
      endsWith: `pipeline ${pipeline?.id}: cancel failed: POST /api/v4/projects/ci%2Fcanary-stuck-403/pipelines/${pipeline?.id}/cancel: HTTP 403: 403 Forbidden`,
    });
    expect(pipeline?.status).toBe("pending");
  });

  test("a token GitLab does not accept is reported as unauthorized, and no pipeline is created", async () => {
    ci.addProject({ path: "ci/canary-401", jobs: [{ name: "canary", tags: ["ok-a"] }] });
    const bogus = "glpat-0000000000000000deadbeef";
    const { ctx, logLines } = canaryContext(fake.url, "ci/canary-401", { token: new Secret(bogus) });

    const result = await gitlabCanary(ctx);

    expect(result.reason).toBe("unauthorized");
    expect(result.error).toBe("GET /api/v4/projects/ci%2Fcanary-401/pipelines: HTTP 401: 401 Unauthorized");
    expect(pipelinesOf("ci/canary-401")).toEqual([]);
    expectNoSecret(result, logLines, bogus);
  });

  test("a Reporter's token cannot create the pipeline: forbidden", async () => {
    fake.state.addUser({ username: "reporter-only" });
    const reporterToken = fake.state.issueApiToken("reporter-only");
    ci.addProject({ path: "ci/canary-403", jobs: [{ name: "canary", tags: ["ok-a"] }], members: { "reporter-only": "reporter" } });
    const { ctx, logLines } = canaryContext(fake.url, "ci/canary-403", { token: new Secret(reporterToken) });

    const result = await gitlabCanary(ctx);

    expect(result.reason).toBe("forbidden");
    expect(result.error).toBe("POST /api/v4/projects/ci%2Fcanary-403/pipeline: HTTP 403: 403 Forbidden");
    expectNoSecret(result, logLines, reporterToken);
  });

  test("a prober restarted while its canary pipeline still runs adopts that pipeline instead of starting a second one", async () => {
    const project = ci.addProject({ path: "ci/canary-restart", jobs: [{ name: "canary", tags: ["restart-a"] }] });
    ci.addRunner({ description: "runner-restart", tags: ["restart-a"], behaviour: { kind: "succeed", pickupMs: 1500, runMs: 300 } });
    // A fresh module graph: no in-process guard remembers the earlier run. Loaded first, so the leftover is still going when the run looks.
    vi.resetModules();
    const fresh = await import("../../../src/probes/canary-gitlab.js");
    // The earlier process created it through the API, as the canary does, and then died.
    const res = await fetch(`${fake.url}/api/v4/projects/${project.id}/pipeline`, {
      method: "POST",
      headers: { "private-token": token, "content-type": "application/json" },
      body: JSON.stringify({ ref: "main", variables: [{ key: "CI_PROBER_CANARY", value: "1" }] }),
    });
    const left = (await res.json()) as { id: number };
    // A pipeline of the same ref that is not the prober's (a push) is left alone.
    const push = ci.createPipeline(project, "main", "push", [], null);

    const { ctx, logLines } = canaryContext(fake.url, "ci/canary-restart", { token: new Secret(token) });
    const result = await fresh.gitlabCanary(ctx);

    expect(result.success).toBe(true);
    expect(
      pipelinesOf("ci/canary-restart")
        .map((p) => p.id)
        .sort(),
    ).toEqual([left.id, push.id].sort());
    expect(ci.requests.filter((r) => r.method === "POST" && r.path.startsWith("/api/v4/projects/ci%2Fcanary-restart/pipeline"))).toEqual(
      [],
    );
    expect(result.jobs?.map((j) => j.id)).toEqual([ci.pipelines.get(left.id)?.jobs[0]?.id]);
    expectLogLine(result.log, { includes: `adopted canary pipeline ${left.id} left by an earlier run` });
    expectNoSecret(result, logLines, token);
  });

  test("with a Reporter token that may not read variables, a leftover triggered pipeline is adopted by its source", async () => {
    fake.state.addUser({ username: "reporter-follow" });
    const reporterToken = fake.state.issueApiToken("reporter-follow");
    const project = ci.addProject({
      path: "ci/canary-reporter",
      jobs: [{ name: "canary", tags: ["reporter-a"] }],
      members: { "reporter-follow": "reporter" },
    });
    const triggerToken = ci.addTriggerToken(project);
    ci.addRunner({ description: "runner-reporter", tags: ["reporter-a"], behaviour: { kind: "succeed", pickupMs: 1500, runMs: 100 } });
    const left = ci.createPipeline(project, "main", "trigger", [{ key: "CI_PROBER_CANARY", value: "1", variable_type: "env_var" }], null);
    const { ctx, logLines } = canaryContext(fake.url, "ci/canary-reporter", {
      token: new Secret(reporterToken),
      triggerToken: new Secret(triggerToken),
    });

    const result = await gitlabCanary(ctx);

    expect(result.success).toBe(true);
    expect(pipelinesOf("ci/canary-reporter").map((p) => p.id)).toEqual([left.id]);
    expectLogLine(result.log, { endsWith: `pipeline ${left.id}: variables not readable (403); judging by its source (trigger)` });
    expectNoSecret(result, logLines, reporterToken, triggerToken);
  });

  test("a leftover pipeline that moves on (created, pending, running) between the canary's status queries is still adopted", async () => {
    const project = ci.addProject({ path: "ci/canary-moving", jobs: [{ name: "canary", tags: ["no-runner-has-this-tag"] }] });
    const left = ci.createPipeline(project, "main", "api", [{ key: "CI_PROBER_CANARY", value: "1", variable_type: "env_var" }], null);
    // Once the fake's own move to pending is done (no runner moves it further), back to the start of its lifecycle.
    await new Promise((r) => setTimeout(r, 100));
    left.status = "created";
    // Every status query finds the pipeline one step further on than the one before it, as on a busy GitLab.
    const next: Record<string, FakePipeline["status"]> = { created: "pending", pending: "running" };
    ci.onApiRequest = (method, url) => {
      if (method === "GET" && url.pathname.endsWith("/pipelines") && url.searchParams.has("status"))
        left.status = next[left.status] ?? left.status;
    };
    const { ctx } = canaryContext(fake.url, "ci/canary-moving", { token: new Secret(token), timeoutMs: 1000 });

    const result = await gitlabCanary(ctx).finally(() => {
      ci.onApiRequest = undefined;
    });

    expect(left.status).toBe("canceled");
    expect(pipelinesOf("ci/canary-moving").map((p) => p.id)).toEqual([left.id]);
    expectLogLine(result.log, {
      endsWith: `adopted canary pipeline ${left.id} left by an earlier run (running) ${fake.url}/ci/canary-moving/-/pipelines/${left.id}`,
    });
    expect(result.reason).toBe("pipeline_timeout");
  });

  test("a canary pipeline older than the timeout, left by an earlier run, is cancelled and a new one started", async () => {
    const project = ci.addProject({ path: "ci/canary-stale", jobs: [{ name: "canary", tags: ["stale-a"] }] });
    const runner = ci.addRunner({
      description: "runner-stale",
      tags: ["stale-a"],
      behaviour: { kind: "succeed", pickupMs: 50, runMs: 50 },
    });
    // While the runner is paused the earlier pipeline's job finds no runner and stays pending.
    runner.paused = true;
    const stale = ci.createPipeline(project, "main", "api", [{ key: "CI_PROBER_CANARY", value: "1", variable_type: "env_var" }], null);
    stale.createdAt -= 60_000;
    await new Promise((r) => setTimeout(r, 100));
    runner.paused = false;

    const { ctx } = canaryContext(fake.url, "ci/canary-stale", { token: new Secret(token), timeoutMs: 10_000 });
    const result = await gitlabCanary(ctx);

    expect(result.success).toBe(true);
    expect(stale.status).toBe("canceled");
    const ids = pipelinesOf("ci/canary-stale").map((p) => p.id);
    expect(ids).toHaveLength(2);
    expectLogLine(result.log, { endsWith: `canceled canary pipeline ${stale.id} left by an earlier run (pending)` });
  });

  test("two canary runs at once in one process share one pipeline", async () => {
    ci.addProject({ path: "ci/canary-once", jobs: [{ name: "canary", tags: ["once-a"] }] });
    ci.addRunner({ description: "runner-once", tags: ["once-a"], behaviour: { kind: "succeed", pickupMs: 100, runMs: 100 } });
    const first = canaryContext(fake.url, "ci/canary-once", { token: new Secret(token) });
    const second = canaryContext(fake.url, "ci/canary-once", { token: new Secret(token) });

    const [r1, r2] = await Promise.all([gitlabCanary(first.ctx), gitlabCanary(second.ctx)]);

    expect(pipelinesOf("ci/canary-once")).toHaveLength(1);
    expect(r1.success && r2.success).toBe(true);
    expect(r2.jobs).toEqual(r1.jobs);
  });

  test("with a pipeline trigger token the pipeline is triggered (source trigger, CI_PROBER_CANARY set) and the trigger token never shows", async () => {
    const project = ci.addProject({ path: "ci/canary-trigger", jobs: [{ name: "canary", tags: ["trigger-a"] }] });
    const triggerToken = ci.addTriggerToken(project);
    ci.addRunner({ description: "runner-trigger", tags: ["trigger-a"], behaviour: { kind: "succeed", pickupMs: 50, runMs: 50 } });
    const { ctx, logLines } = canaryContext(fake.url, "ci/canary-trigger", {
      token: new Secret(token),
      triggerToken: new Secret(triggerToken),
    });

    const result = await gitlabCanary(ctx);

    const [pipeline] = pipelinesOf("ci/canary-trigger");
    expect(result.success).toBe(true);
    expect(pipeline?.source).toBe("trigger");
    expect(pipeline?.variables).toEqual([{ key: "CI_PROBER_CANARY", value: "1", variable_type: "env_var" }]);
    expectNoSecret(result, logLines, token, triggerToken);
  });

  test("a rate-limited GitLab (429, Retry-After: 1) is waited out and the canary still succeeds", async () => {
    ci.addProject({ path: "ci/canary-429", jobs: [{ name: "canary", tags: ["rl-a"] }] });
    ci.addRunner({ description: "runner-rl", tags: ["rl-a"], behaviour: { kind: "succeed", pickupMs: 50, runMs: 50 } });
    const { ctx } = canaryContext(fake.url, "ci/canary-429", { token: new Secret(token) });
    const before = ci.requests.length;
    ci.limitNext({ remaining: 1, retryAfterSeconds: 1 });

    const t0 = performance.now();
    const result = await gitlabCanary(ctx);

    expect(result.success).toBe(true);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1000);
    const first = ci.requests.slice(before, before + 2);
    expect(first.map((r) => [r.path, r.status])).toEqual([
      ["/api/v4/projects/ci%2Fcanary-429/pipelines", 429],
      ["/api/v4/projects/ci%2Fcanary-429/pipelines", 200],
    ]);
    expect((first[1]?.at ?? 0) - (first[0]?.at ?? 0)).toBeGreaterThanOrEqual(1000);
  });
});
