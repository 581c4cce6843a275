import { randomBytes } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, inject, test } from "vitest";
import { gitlabCanary } from "../../../src/probes/canary-gitlab.js";
import { Secret } from "../../../src/secret.js";
import { ACCESS_DENIED_MESSAGE } from "../../fake-gitlab/jwt.js";
import { ciState, type CiState } from "../../fake-gitlab/pipelines.js";
import { startFakeGitlab, type FakeGitlab } from "../../fake-gitlab/server.js";
import { dockerCli } from "../../services/index.js";
import { run } from "../../services/procs.js";
import { canaryContext, testSigningKey } from "../../helpers/gitlab.js";

const services = inject("services");
let fake: FakeGitlab;
let ci: CiState;
let token: string;
let image: string;

/**
 * An image of its own (one layer no other test has) pushed to the token
 * registry, so this file's pulls into the shared dockerd never make another
 * test's "fresh pull" find its layers already present.
 */
async function pushOwnImage(): Promise<string> {
  const dir = mkdtempSync(join(services.tmp, "gitlab-canary-image-"));
  const tag = `ci-prober-test/gitlab-canary:${randomBytes(4).toString("hex")}`;
  const dest = `${services.token.host}/ci/gitlab-canary:latest`;
  try {
    writeFileSync(join(dir, "canary-marker"), randomBytes(32).toString("hex"));
    execFileSync("tar", ["-C", dir, "-cf", join(dir, "rootfs.tar"), "canary-marker"]);
    await run(dockerCli(), ["-H", services.dockerHost, "import", join(dir, "rootfs.tar"), tag]);
    await run(dockerCli(), ["-H", services.dockerHost, "save", "-o", join(dir, "image.tar"), tag]);
    await run(dockerCli(), ["-H", services.dockerHost, "rmi", tag]);
    const { username, password } = services.gitlab.admin;
    await run("skopeo", [
      "copy",
      "--quiet",
      "--dest-tls-verify=false",
      "--dest-creds",
      `${username}:${password}`,
      `docker-archive:${join(dir, "image.tar")}`,
      `docker://${dest}`,
    ]);
    return dest;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

beforeAll(async () => {
  fake = await startFakeGitlab(testSigningKey());
  ci = ciState(fake.state);
  fake.state.addUser({ username: "canary-bot" });
  token = fake.state.issueApiToken("canary-bot");
  image = await pushOwnImage();
});

afterAll(async () => {
  ci.close();
  await fake.close();
  await run(dockerCli(), ["-H", services.dockerHost, "rmi", image]).catch(() => undefined);
});

async function control(path: string, body: unknown): Promise<void> {
  const res = await fetch(`${services.gitlab.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
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
    behaviour: { kind: "pull", docker: dockerCli(), dockerHost: services.dockerHost, image, username, password, pickupMs: 20 },
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
  const daemon = `Error response from daemon: Head "http://${registry}/v2/ci/gitlab-canary/manifests/latest": unauthorized: ${ACCESS_DENIED_MESSAGE}`;
  const errorLine = failed.jobs?.[0]?.errorLine;
  expect(failed.reason).toBe("pipeline_failed");
  expect(failed.jobs?.[0]).toMatchObject({ runner: "runner-real-pull", status: "failed", failureReason: "runner_system_failure" });
  expect(failed.error).toBe(
    `pipeline ${failed.log.join(" ").match(/created pipeline (\d+)/)?.[1]} failed: job canary-token-registry on runner-real-pull: runner_system_failure: ${errorLine}`,
  );
  expect(errorLine).toBe(`WARNING: Failed to pull image with policy "always": ${daemon} (manager.go:250:0s)`);
  expect(JSON.stringify(failed) + blocked.logLines.join("\n")).not.toContain(password);
});
