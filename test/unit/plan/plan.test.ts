import { join } from "node:path";
import { describe, expect, test } from "vitest";
import type { RunnerSpec } from "../../../src/config/resolve.js";
import { silentLogger } from "../../../src/log.js";
import { plan } from "../../../src/plan.js";
import type { Sink } from "../../../src/probes/index.js";
import { keyText } from "../../../src/task-key.js";
import { tempDir, writeDockerConfig } from "../../helpers/fixtures.js";
import { testConfig } from "../../helpers/config.js";

// plan() reads files only (no network): every registry here is a name that is never spoken to.

const NO_SINK: Sink = { probe: () => undefined, checks: () => undefined, cert: () => undefined };

function runnerSpec(name: string, dockerConfig: string, images: string[], over: Partial<RunnerSpec> = {}): RunnerSpec {
  return { source: `ci-prober.yml#runners[${name}]`, name, dockerConfig, mode: "direct", images, fresh: false, ...over };
}

function setup() {
  const dir = tempDir("plan");
  const docker = writeDockerConfig(join(dir, "docker"), {
    "registry-a.example.jp": { username: "alice", password: "pw-a" },
    "registry-b.example.jp": { username: "gitlab+deploy-token-7", password: "pw-b" },
  });
  return { docker };
}

describe("plan", () => {
  test("lists one task per target of every probe kind, identified by kind, runner and target", async () => {
    const { docker } = setup();
    const config = testConfig({
      runners: [runnerSpec("r1", docker, ["registry-a.example.jp/ci/app:1", "registry-c.example.jp/ci/base:2"])],
      canary: {
        gitlab: {
          url: "https://gitlab.example.jp",
          project: "ci/canary",
          ref: "main",
          variables: {},
          intervalMs: 900_000,
          timeoutMs: 600_000,
        },
      },
      gitlab: { url: "https://gitlab.example.jp", intervalMs: 300_000 },
      registries: { "registry-b.example.jp": { insecure: false, ca: "-----BEGIN CERTIFICATE-----" } },
    });
    const p = await plan({ config, logger: silentLogger, sink: NO_SINK, signal: AbortSignal.timeout(10_000), checks: true });
    expect(p.errors).toEqual([]);
    expect(p.tasks.map((t) => t.key)).toEqual([
      { kind: "login", runner: "r1", target: "registry-a.example.jp" },
      { kind: "login", runner: "r1", target: "registry-b.example.jp" },
      { kind: "login", runner: "r1", target: "registry-c.example.jp" },
      { kind: "pull", runner: "r1", target: "registry-a.example.jp/ci/app:1" },
      { kind: "pull", runner: "r1", target: "registry-c.example.jp/ci/base:2" },
      { kind: "gitlab_canary", runner: "gitlab", target: "ci/canary" },
      { kind: "credential_check", runner: "r1", target: "registry-a.example.jp" },
      { kind: "credential_check", runner: "r1", target: "registry-b.example.jp" },
      { kind: "certificate_check", runner: "", target: "registry-a.example.jp" },
      { kind: "certificate_check", runner: "", target: "registry-b.example.jp" },
      { kind: "certificate_check", runner: "", target: "registry-c.example.jp" },
    ]);
    expect(p.tasks.map((t) => keyText(t.key)).slice(0, 1)).toEqual(["login|r1|registry-a.example.jp"]);
    const canary = p.tasks.find((t) => t.key.kind === "gitlab_canary");
    expect({ interval: canary?.intervalMs, timeout: canary?.timeoutMs, group: canary?.group }).toEqual({
      interval: 900_000,
      timeout: 630_000,
      group: "gitlab|https://gitlab.example.jp",
    });
  });

  test("once plans no checks; a runner's own interval and timeout go on its probes; a bad image is one error line", async () => {
    const { docker } = setup();
    const config = testConfig({
      intervalMs: 60_000,
      runners: [runnerSpec("r1", docker, ["Not An Image!"], { intervalMs: 5_000, timeoutMs: 2_000 })],
      gitlab: { url: "https://gitlab.example.jp", intervalMs: 300_000 },
    });
    const p = await plan({ config, logger: silentLogger, sink: NO_SINK, signal: AbortSignal.timeout(10_000) });
    expect(p.tasks.map((t) => [keyText(t.key), t.intervalMs, t.timeoutMs, t.group])).toEqual([
      ["login|r1|registry-a.example.jp", 5_000, 2_000, "registry-a.example.jp"],
      ["login|r1|registry-b.example.jp", 5_000, 2_000, "registry-b.example.jp"],
    ]);
    expect(p.errors).toEqual([
      'ci-prober.yml#runners[r1]: images: invalid image reference "Not An Image!": bad repository "library/Not An Image!"',
    ]);
  });

  test("a local canary goes only to engine-mode runners named in canary.local.runners", async () => {
    const { docker } = setup();
    const local = { image: "registry-a.example.jp/ci/canary:1", command: ["true"], network: "none", runners: ["e1"], timeoutMs: 45_000 };
    const config = testConfig({
      runners: [
        runnerSpec("e1", docker, [], { mode: "engine" }),
        runnerSpec("e2", docker, [], { mode: "engine" }),
        runnerSpec("d1", docker, []),
      ],
      canary: { local },
    });
    const p = await plan({ config, logger: silentLogger, sink: NO_SINK, signal: AbortSignal.timeout(10_000) });
    const canaries = p.tasks.filter((t) => t.key.kind === "local_canary");
    expect(canaries.map((t) => [keyText(t.key), t.timeoutMs, t.group])).toEqual([["canary|e1|local", 45_000, "registry-a.example.jp"]]);
  });
});
