import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ciState, type CiState } from "../../fake-gitlab/pipelines.js";
import { startFakeGitlab, type FakeGitlab } from "../../fake-gitlab/server.js";
import { testSigningKey } from "../../helpers/gitlab.js";

// The fake's answers against doc/api/pipelines.md and doc/api/jobs.md (GitLab 17.x): the same keys, the same shapes.

let fake: FakeGitlab;
let ci: CiState;
let token: string;

beforeAll(async () => {
  fake = await startFakeGitlab(testSigningKey());
  ci = ciState(fake.state);
  fake.state.addUser({ username: "api-reader" });
  token = fake.state.issueApiToken("api-reader");
  ci.addProject({
    path: "ci/fields",
    jobs: [
      { name: "ok", tags: ["fields-ok"] },
      { name: "broken", tags: ["fields-bad"] },
    ],
  });
  ci.addRunner({ description: "fields-runner", tags: ["fields-ok"], behaviour: { kind: "succeed", pickupMs: 10, runMs: 30 } });
  ci.addRunner({
    description: "fields-bad-runner",
    tags: ["fields-bad"],
    behaviour: {
      kind: "fail",
      failureReason: "script_failure",
      trace: "\x1b[31;1mERROR: Job failed: exit code 1\x1b[0;m\n",
      pickupMs: 10,
      runMs: 30,
    },
  });
});

afterAll(async () => {
  ci.close();
  await fake.close();
});

function api(path: string, init: RequestInit = {}, auth = true) {
  const headers = new Headers(init.headers);
  if (auth) headers.set("private-token", token);
  return fetch(`${fake.url}/api/v4${path}`, { ...init, headers });
}

const PIPELINE_BASIC = ["created_at", "id", "iid", "name", "project_id", "ref", "sha", "source", "status", "updated_at", "web_url"];
const PIPELINE_DETAIL = [
  ...PIPELINE_BASIC,
  "before_sha",
  "committed_at",
  "coverage",
  "detailed_status",
  "duration",
  "finished_at",
  "queued_duration",
  "started_at",
  "tag",
  "user",
  "yaml_errors",
].sort();
const RUNNER = ["active", "description", "id", "ip_address", "is_shared", "name", "online", "paused", "runner_type", "status"];

async function waitFor(id: number, status: string) {
  for (let i = 0; i < 100; i++) {
    const p = (await (await api(`/projects/ci%2Ffields/pipelines/${id}`)).json()) as { status: string };
    if (p.status === status) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`pipeline ${id} never became ${status}`);
}

describe("fake GitLab API v4", () => {
  test("pipelines go created → pending → running → failed, with the documented pipeline and job entities", async () => {
    const created = await api("/projects/ci%2Ffields/pipeline", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ref: "main" }),
    });
    expect(created.status).toBe(201);
    const p = (await created.json()) as Record<string, unknown>;
    expect(Object.keys(p).sort()).toEqual(PIPELINE_DETAIL);
    expect(p.status).toBe("created");
    expect(p.source).toBe("api");
    expect(p.user).toMatchObject({ username: "api-reader", state: "active" });
    const id = Number(p.id);
    await waitFor(id, "failed");
    expect(ci.pipelines.get(id)?.history).toEqual(["created", "pending", "running", "failed"]);

    const list = (await (await api("/projects/ci%2Ffields/pipelines?ref=main")).json()) as Record<string, unknown>[];
    expect(list.map((x) => Object.keys(x).sort())).toEqual([PIPELINE_BASIC]);

    const jobsRes = await api(`/projects/ci%2Ffields/pipelines/${id}/jobs`);
    expect(jobsRes.headers.get("x-total")).toBe("2");
    expect(jobsRes.headers.get("x-page")).toBe("1");
    const jobs = (await jobsRes.json()) as Record<string, unknown>[];
    // Newest first, as GitLab 13.5+ lists them.
    const [broken, ok] = jobs;
    expect([broken?.name, ok?.name]).toEqual(["broken", "ok"]);
    expect(broken).toMatchObject({ status: "failed", failure_reason: "script_failure", stage: "test" });
    expect(ok).toMatchObject({ status: "success", stage: "test" });
    expect("failure_reason" in (ok ?? {})).toBe(false);
    for (const key of [
      "id",
      "name",
      "stage",
      "status",
      "created_at",
      "started_at",
      "finished_at",
      "duration",
      "queued_duration",
      "runner",
      "pipeline",
      "web_url",
      "commit",
      "user",
      "tag_list",
    ]) {
      expect(Object.keys(ok ?? {})).toContain(key);
    }
    expect(Object.keys((ok?.runner ?? {}) as object).sort()).toEqual(RUNNER);
    expect(ok?.runner).toMatchObject({ description: "fields-runner", runner_type: "instance_type", paused: false, online: true });
    expect(typeof ok?.queued_duration).toBe("number");
    expect(typeof ok?.duration).toBe("number");

    const trace = await api(`/projects/ci%2Ffields/jobs/${String(broken?.id)}/trace`);
    expect(trace.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    expect(await trace.text()).toBe("\x1b[31;1mERROR: Job failed: exit code 1\x1b[0;m\n");
  });

  test("a job no runner can take stays pending with runner null and a growing queued_duration; cancel makes it canceled", async () => {
    const project = ci.addProject({ path: "ci/fields-stuck", jobs: [{ name: "stuck", tags: ["fields-nobody"] }] });
    const pipeline = ci.createPipeline(project, "main", "api", [], null);
    await new Promise((r) => setTimeout(r, 300));
    const [job] = (await (await api(`/projects/${project.id}/pipelines/${pipeline.id}/jobs`)).json()) as Record<string, unknown>[];
    expect(job).toMatchObject({ status: "pending", runner: null, started_at: null, duration: null });
    expect(Number(job?.queued_duration)).toBeGreaterThanOrEqual(0.25);
    const canceled = (await (await api(`/projects/${project.id}/pipelines/${pipeline.id}/cancel`, { method: "POST" })).json()) as Record<
      string,
      unknown
    >;
    expect(canceled.status).toBe("canceled");
  });

  test("401 without a valid token; 429 as Rack::Attack sends it, with Retry-After and RateLimit-* headers", async () => {
    const denied = await api("/projects/ci%2Ffields/pipelines", {}, false);
    expect(denied.status).toBe(401);
    expect(await denied.json()).toEqual({ message: "401 Unauthorized" });
    expect(denied.headers.get("ratelimit-limit")).toBe("2000");

    ci.limitNext({ remaining: 1, retryAfterSeconds: 7 });
    const limited = await api("/projects/ci%2Ffields/pipelines");
    expect(limited.status).toBe(429);
    expect(await limited.text()).toBe("Retry later\n");
    expect(limited.headers.get("retry-after")).toBe("7");
    expect(limited.headers.get("ratelimit-remaining")).toBe("0");
    expect(limited.headers.get("ratelimit-name")).toBe("throttle_authenticated_api");
    const reset = Number(limited.headers.get("ratelimit-reset"));
    expect(reset - Date.now() / 1000).toBeGreaterThan(6);
    expect(limited.headers.get("ratelimit-resettime")).toBe(new Date(reset * 1000).toUTCString());
    expect((await api("/projects/ci%2Ffields/pipelines")).status).toBe(200);
  });

  test("the trigger endpoint takes the trigger token in the body and refuses a wrong one with 404", async () => {
    const project = ci.addProject({ path: "ci/fields-trigger", jobs: [] });
    const trigger = ci.addTriggerToken(project);
    const form = new URLSearchParams({ token: trigger, ref: "main", "variables[CI_PROBER_CANARY]": "1" });
    const ok = await api(`/projects/ci%2Ffields-trigger/trigger/pipeline`, { method: "POST", body: form }, false);
    expect(ok.status).toBe(201);
    const p = (await ok.json()) as { id: number; source: string };
    expect(p.source).toBe("trigger");
    expect(ci.pipelines.get(p.id)?.variables).toEqual([{ key: "CI_PROBER_CANARY", value: "1", variable_type: "env_var" }]);
    const wrong = await api(
      `/projects/ci%2Ffields-trigger/trigger/pipeline`,
      { method: "POST", body: new URLSearchParams({ token: "glptt-wrong", ref: "main" }) },
      false,
    );
    expect(wrong.status).toBe(404);
    expect(await wrong.json()).toEqual({ message: "404 Not Found" });
  });
});
