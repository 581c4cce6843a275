import { afterAll, beforeAll, expect, test } from "vitest";
import { deadline } from "../../../src/deadline.js";
import { silentLogger } from "../../../src/log.js";
import { plan } from "../../../src/plan.js";
import type { CredentialCheck } from "../../../src/probes/credential-check.js";
import { NoHarm } from "../../../src/probes/guard.js";
import { Secret } from "../../../src/secret.js";
import { startFakeGitlab, type FakeGitlab } from "../../fake-gitlab/server.js";
import { tempDir, writeDockerConfig } from "../../helpers/fixtures.js";
import { testSigningKey } from "../../helpers/gitlab.js";
import { testConfig } from "../../helpers/config.js";

let gitlab: FakeGitlab;

beforeAll(async () => {
  gitlab = await startFakeGitlab(testSigningKey());
  gitlab.state.addUser({ username: "tanaka", password: "pw-tanaka-0001" });
  gitlab.state.addUser({ username: "suzuki", password: "pw-suzuki-0002" });
});

afterAll(async () => {
  await gitlab.close();
});

async function checkRound(requestsPerMinute: number): Promise<{ checks: string[]; apiRequests: number }> {
  const dockerConfig = writeDockerConfig(tempDir("budget-checks"), {
    "a.example.jp": { username: "tanaka", password: "pw-tanaka-0001" },
    "b.example.jp": { username: "suzuki", password: "pw-suzuki-0002" },
  });
  const config = testConfig({
    gitlab: { url: gitlab.url, token: new Secret(gitlab.state.issueApiToken("root")), intervalMs: 60_000, requestsPerMinute },
    runners: [{ source: "test#runners[0]", name: "r1", dockerConfig, mode: "direct", fresh: false }],
  });
  const checks: string[] = [];
  const sink = {
    probe: () => undefined,
    checks: (_key: unknown, found: CredentialCheck[]) => checks.push(...found.map((c) => `${c.username} ${c.state}`)),
    cert: () => undefined,
  };
  const before = gitlab.state.requests.filter((r) => r.path.startsWith("/api/v4/")).length;
  const d = deadline(5000);
  const p = await plan({ config, logger: silentLogger, sink, signal: d.signal, checks: true, harm: new NoHarm(config) });
  const tasks = p.tasks.filter((t) => t.key.kind === "credential_check");
  if (tasks.length !== 2) throw new Error(`expected a check per registry, got ${tasks.length}`);
  for (const task of tasks) await task.run(d.signal);
  d.dispose();
  return { checks: checks.sort(), apiRequests: gitlab.state.requests.filter((r) => r.path.startsWith("/api/v4/")).length - before };
}

test("credential checks over the GitLab API budget are deferred, never reported as an unknown owner; within it they are recorded", async () => {
  // One request a minute: it is spent at once, every look-up after it is deferred to a later round.
  expect(await checkRound(1)).toEqual({ checks: [], apiRequests: 1 });
  expect((await checkRound(100)).checks).toEqual(["suzuki active", "tanaka active"]);
});
