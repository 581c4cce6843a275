import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, expect, inject, test } from "vitest";
import { gitlabCanary } from "../../src/probes/canary-gitlab.js";
import { Secret } from "../../src/secret.js";
import { ACCESS_DENIED_MESSAGE } from "../fake-gitlab/jwt.js";
import { ciState, type CiState } from "../fake-gitlab/pipelines.js";
import { startFakeGitlab, type FakeGitlab } from "../fake-gitlab/server.js";
import { dockerCli } from "../services/index.js";
import { canaryContext, testSigningKey } from "./helpers.js";

const services = inject("services");
let fake: FakeGitlab;
let ci: CiState;
let token: string;

beforeAll(async () => {
  fake = await startFakeGitlab(testSigningKey());
  ci = ciState(fake.state);
  fake.state.addUser({ username: "canary-bot" });
  token = fake.state.issueApiToken("canary-bot");
});

afterAll(async () => {
  ci.close();
  await fake.close();
});

async function control(path: string, body: unknown): Promise<void> {
  const res = await fetch(`${services.gitlab.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
}

test("the fake runner really pulls through dockerd: it passes, and once the credential's user is blocked the job fails with the daemon's unauthorized line", async () => {
  const username = `deployer-${randomBytes(4).toString("hex")}`;
  const password = `pw-${randomBytes(12).toString("hex")}`;
  await control("/-/test/users", { username, password, actions: ["pull"] });
  ci.addProject({ path: "ci/canary-real-pull", jobs: [{ name: "canary-token-registry", tags: ["real-pull"] }] });
  ci.addRunner({
    description: "runner-real-pull",
    tags: ["real-pull"],
    behaviour: { kind: "pull", docker: dockerCli(), dockerHost: services.dockerHost, image: services.token.image, username, password, pickupMs: 20 },
  });
  const ok = canaryContext(fake.url, "ci/canary-real-pull", { token: new Secret(token) });
  const passed = await gitlabCanary(ok.ctx);
  expect(passed.error).toBeUndefined();
  expect(passed.success).toBe(true);
  expect(passed.jobs?.map((j) => [j.runner, j.status])).toEqual([["runner-real-pull", "success"]]);

  await control(`/-/test/users/${username}/state`, { state: "ldap_blocked" });
  const blocked = canaryContext(fake.url, "ci/canary-real-pull", { token: new Secret(token) });
  const failed = await gitlabCanary(blocked.ctx);

  const registry = services.token.host;
  const daemon = `Error response from daemon: Head "http://${registry}/v2/ci/canary/manifests/latest": unauthorized: ${ACCESS_DENIED_MESSAGE}`;
  const errorLine = failed.jobs?.[0]?.errorLine;
  expect(failed.reason).toBe("pipeline_failed");
  expect(failed.jobs?.[0]).toMatchObject({ runner: "runner-real-pull", status: "failed", failureReason: "runner_system_failure" });
  expect(failed.error).toBe(`pipeline ${failed.log.join(" ").match(/created pipeline (\d+)/)?.[1]} failed: job canary-token-registry on runner-real-pull: runner_system_failure: ${errorLine}`);
  expect(errorLine).toBe(`WARNING: Failed to pull image with policy "always": ${daemon} (manager.go:250:0s)`);
  expect(JSON.stringify(failed) + blocked.logLines.join("\n")).not.toContain(password);
});
