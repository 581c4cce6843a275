import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";
import type { Config, RunnerSpec } from "../../../src/config/resolve.js";
import { withDeadline } from "../../../src/deadline.js";
import { silentLogger } from "../../../src/log.js";
import { plan } from "../../../src/plan.js";
import { NoHarm } from "../../../src/probes/guard.js";
import { Scheduler } from "../../../src/scheduler.js";
import type { ProbeResult } from "../../../src/types.js";
import { startFaultProxy, type FaultProxy } from "../../helpers/fault-proxy.js";
import { createGitlabUser, tempDir, writeDockerConfig } from "../../helpers/fixtures.js";
import { testConfig } from "../../helpers/config.js";

// Two runners holding the same credential and pulling the same image, in
// direct mode: the registry (seen through a counting proxy in front of the
// real token-auth registry) and its token realm get one set of requests per
// round, and each runner's result names its own file.

const services = inject("services");
let proxy: FaultProxy;
let image: string;
let files: string[];
let user: { username: string; password: string };

beforeAll(async () => {
  proxy = await startFaultProxy(services.token.host);
  image = `${proxy.host}/ci/canary:latest`;
  user = await createGitlabUser(services.gitlab.url, { username: `shared-${Date.now()}` });
  const dir = tempDir("shared");
  files = ["runner-a", "runner-b"].map((name) => writeDockerConfig(join(dir, name, ".docker"), { [proxy.host]: user }));
});

afterAll(async () => {
  await proxy?.close();
});

function configFor(names: string[]): Config {
  const runners: RunnerSpec[] = names.map((name, i) => ({
    source: `test#runners[${i}]`,
    name,
    dockerConfig: files[i] ?? "",
    mode: "direct",
    fresh: false,
  }));
  return testConfig({ runners, images: [image], concurrency: 8 });
}

/** Tokens /jwt/auth issued to this test's user (other tests use the realm at the same time). */
async function jwtRequests(): Promise<number> {
  const res = await fetch(`${services.gitlab.url}/-/test/log?event=jwt_issued`, { signal: AbortSignal.timeout(5000) });
  return ((await res.json()) as { username: string }[]).filter((e) => e.username === user.username).length;
}

/** One round as `once` runs it, with the daemon's no-harm state kept across rounds; what the proxy and the token realm saw. */
async function round(config: Config, harm: NoHarm): Promise<{ results: ProbeResult[]; registry: string[]; tokens: number }> {
  const results: ProbeResult[] = [];
  const sink = { probe: (_key: unknown, r: ProbeResult) => results.push(r), checks: () => undefined, cert: () => undefined };
  const seenBefore = proxy.requests.length;
  const tokensBefore = await jwtRequests();
  await withDeadline(30_000, undefined, async (signal) => {
    const p = await plan({ config, logger: silentLogger, sink, signal, harm });
    await new Scheduler({ concurrency: config.concurrency, logger: silentLogger }).runOnce(p.tasks);
  });
  const registry = proxy.requests
    .slice(seenBefore)
    .map((r) => `${r.method} ${r.path.split("?")[0] ?? ""}`)
    .sort();
  return { results, registry, tokens: (await jwtRequests()) - tokensBefore };
}

describe("identical direct probes of two runners", () => {
  test("run once per round: the registry and /jwt/auth see what one runner alone sends, and both runners' results are recorded", async () => {
    const solo = new NoHarm({});
    const alone = [];
    for (let i = 0; i < 3; i++) alone.push(await round(configFor(["runner-a"]), solo));
    const pair = new NoHarm({});
    const both = [];
    for (let i = 0; i < 3; i++) both.push(await round(configFor(["runner-a", "runner-b"]), pair));

    // Round 1 is a full pull, rounds 2 and 3 a HEAD of the manifest: the same requests either way.
    expect(alone[0]?.registry.filter((r) => r.startsWith("GET /v2/ci/canary/blobs/")).length).toBeGreaterThan(0);
    expect(alone[1]?.registry.filter((r) => r === "HEAD /v2/ci/canary/manifests/latest")).toHaveLength(1);
    for (let i = 0; i < 3; i++) {
      expect(both[i]?.registry).toEqual(alone[i]?.registry);
      expect(both[i]?.tokens).toBe(alone[i]?.tokens);
      expect(both[i]?.tokens).toBe(2);
    }
    for (const { results } of both) {
      expect(results.map((r) => `${r.probe} ${r.runner} ${r.success}`).sort()).toEqual([
        "login runner-a true",
        "login runner-b true",
        "pull runner-a true",
        "pull runner-b true",
      ]);
      for (const r of results) expect(r.credential?.source).toBe(`${r.runner === "runner-a" ? files[0] : files[1]}#auths["${proxy.host}"]`);
      // One of each pair ran; the other took its result and says whose.
      for (const probe of ["login", "pull"]) {
        const shared = results.filter((r) => r.probe === probe && r.sharedWith !== undefined);
        expect(shared).toHaveLength(1);
        expect(shared[0]?.log[0]).toMatch(new RegExp(`same requests as runner runner-[ab]'s ${probe} probe: its result is recorded here$`));
      }
    }
  });

  test("runners with different credentials for the same image are not merged", async () => {
    const other = await createGitlabUser(services.gitlab.url, { username: `shared-other-${Date.now()}` });
    const dir = tempDir("shared-other");
    const otherFile = writeDockerConfig(join(dir, ".docker"), { [proxy.host]: other });
    const config = configFor(["runner-a"]);
    config.runners.push({ source: "test#runners[1]", name: "runner-c", dockerConfig: otherFile, mode: "direct", fresh: false });
    const issued = async () => {
      const res = await fetch(`${services.gitlab.url}/-/test/log?event=jwt_issued`, { signal: AbortSignal.timeout(5000) });
      return ((await res.json()) as { username: string }[]).filter((e) => e.username === other.username).length;
    };
    const before = await issued();
    const { results, tokens } = await round(config, new NoHarm({}));
    expect(results.filter((r) => r.sharedWith !== undefined)).toEqual([]);
    // Each secret authenticates on its own: two tokens (login, pull) for each user.
    expect([tokens, (await issued()) - before]).toEqual([2, 2]);
  });
});
