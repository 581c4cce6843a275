import { generateKeyPairSync } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { loadConfigFile } from "../../../src/config/read.js";
import { startDaemon, type Daemon } from "../../../src/daemon/daemon.js";
import { createLogger } from "../../../src/log.js";
import { signingKey } from "../../fake-gitlab/jwt.js";
import { startFakeGitlab, type FakeGitlab } from "../../fake-gitlab/server.js";
import { waitFor } from "../../helpers/daemon.js";
import { tempDir, writeDockerConfig } from "../../helpers/fixtures.js";
import { parseMetrics, select, value } from "../../helpers/metrics.js";

// The daemon in this process, against an in-process fake GitLab and a registry
// address that refuses at once (127.0.0.1:1): no service, and every login fails
// with `connection` in milliseconds, which is all these tests need.

const REGISTRY = "127.0.0.1:1";
let gitlab: FakeGitlab;
let adminToken: string;
let daemon: Daemon | undefined;
const logLines: string[] = [];

beforeAll(async () => {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  gitlab = await startFakeGitlab(signingKey(privateKey.export({ type: "pkcs8", format: "pem" }).toString()));
  adminToken = gitlab.state.issueApiToken("root");
  gitlab.state.addUser({ username: "alice" });
});

afterAll(async () => {
  await gitlab.close();
});

afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
  logLines.length = 0;
});

function configFile(runners: string[], extra = ""): { file: string; write(runners: string[], extra?: string): void } {
  const dir = tempDir("daemon-unit");
  const docker = writeDockerConfig(join(dir, "docker"), { [REGISTRY]: { username: "alice", password: "alice-password-1" } });
  const file = join(dir, "ci-prober.yml");
  const write = (names: string[], more = "") =>
    writeFileSync(
      file,
      [
        "interval: 1s",
        "timeout: 2s",
        "listen_address: 127.0.0.1:0",
        `gitlab: {url: "${gitlab.url}", token: "${adminToken}", interval: 1s}`,
        "runners:",
        ...names.map((n) => `  - {name: ${n}, docker_config: ${docker}}`),
        more,
      ].join("\n"),
    );
  write(runners, extra);
  return { file, write };
}

async function start(file: string): Promise<Daemon> {
  daemon = await startDaemon(
    loadConfigFile(file, {}),
    createLogger("debug", (line) => logLines.push(line)),
  );
  await daemon.firstRound;
  return daemon;
}

async function metrics(d: Daemon) {
  return parseMetrics(await d.metrics.text());
}

interface StatusJson {
  runners: { name: string }[];
  probes: { key: string }[];
  credential_checks: { runner: string; registry: string; username: string; state: string }[];
}

function statusOf(d: Daemon): StatusJson {
  return JSON.parse(JSON.stringify(d.status)) as StatusJson;
}

function count(msg: string): number {
  return logLines.filter((l) => (JSON.parse(l) as { msg: string }).msg === msg).length;
}

describe("the daemon in place", () => {
  test("/status keeps the credential checks across re-plans (they were emptied at every re-plan)", async () => {
    const { file } = configFile(["r1"]);
    const d = await start(file);
    const checks = () =>
      statusOf(d).credential_checks.map(({ runner, registry, username, state }) => ({ runner, registry, username, state }));
    const expected = [{ runner: "r1", registry: REGISTRY, username: "alice", state: "active" }];
    await waitFor("credential checked", 5_000, () => (checks().length > 0 ? true : undefined));
    expect(checks()).toEqual(expected);
    // After each of three re-plans (1 s interval) the check is still listed.
    for (let n = count("re-planned") + 1; n <= 3; n++) {
      await waitFor(`re-plan ${n}`, 5_000, () => (count("re-planned") >= n ? true : undefined));
      expect(checks()).toEqual(expected);
    }
    // The re-plans changed nothing: only the first plan added tasks.
    expect(count("plan updated")).toBe(1);
  });

  test("a reload with a runner removed drops its series and /status entries; the other runner's counters go on", async () => {
    const { file, write } = configFile(["r1", "r2"]);
    const d = await start(file);
    const failures = (m: Awaited<ReturnType<typeof metrics>>, runner: string) =>
      value(m, "ci_prober_probe_failures_total", { probe: "login", runner, target: REGISTRY, reason: "connection" });
    // Two failures counted before the reload: a restarted daemon would count from zero again.
    const before = await waitFor("two failed logins", 5_000, async () => {
      const n = failures(await metrics(d), "r1");
      return n >= 2 ? n : undefined;
    });
    write(["r1"]);
    await d.reload();
    const m = await metrics(d);
    expect(select(m, "ci_prober_login_success").map((s) => s.labels.runner)).toEqual(["r1"]);
    expect(m.filter((s) => s.labels.runner === "r2")).toEqual([]);
    expect(failures(m, "r1")).toBeGreaterThanOrEqual(before);
    expect(statusOf(d).runners.map((r) => r.name)).toEqual(["r1"]);
    expect(statusOf(d).probes.map((p) => p.key)).toEqual([`login|r1|${REGISTRY}`]);
    expect(value(m, "ci_prober_config_last_reload_successful")).toBe(1);
    // The server is the same one: the address did not change.
    const res = await fetch(`http://${d.server.address}/-/ready`, { signal: AbortSignal.timeout(5_000) });
    expect(res.status).toBe(200);
  });

  test("a broken file is refused with its one-line error, sets reload_successful 0 and keeps the running plan", async () => {
    const { file } = configFile(["r1"]);
    const d = await start(file);
    const okAt = value(await metrics(d), "ci_prober_config_last_reload_success_timestamp_seconds");
    writeFileSync(file, "interval: soon\n");
    await expect(d.reload()).rejects.toThrow(`${file}: interval: expected a duration like 30s, got "soon"`);
    const m = await metrics(d);
    expect(value(m, "ci_prober_config_last_reload_successful")).toBe(0);
    expect(value(m, "ci_prober_config_last_reload_success_timestamp_seconds")).toBe(okAt);
    expect(select(m, "ci_prober_login_success").map((s) => s.labels.runner)).toEqual(["r1"]);
    const line = logLines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.msg === "config reload failed; keeping the running config");
    expect(line).toMatchObject({ level: "error", config: file, error: `${file}: interval: expected a duration like 30s, got "soon"` });
  });

  test("POST /-/reload answers 200 once the new config runs and 500 with the reason when it cannot load", async () => {
    const { file, write } = configFile(["r1"]);
    const d = await start(file);
    write(["r1", "r3"]);
    const ok = await fetch(`http://${d.server.address}/-/reload`, { method: "POST", signal: AbortSignal.timeout(10_000) });
    expect({ status: ok.status, body: await ok.text() }).toEqual({ status: 200, body: "config reloaded\n" });
    expect(statusOf(d).runners.map((r) => r.name)).toEqual(["r1", "r3"]);
    writeFileSync(file, "runners: 3\n");
    const bad = await fetch(`http://${d.server.address}/-/reload`, { method: "POST", signal: AbortSignal.timeout(10_000) });
    expect({ status: bad.status, body: await bad.text() }).toEqual({
      status: 500,
      body: `failed to reload config: ${file}: runners: expected array, got 3\n`,
    });
    const get = await fetch(`http://${d.server.address}/-/reload`, { signal: AbortSignal.timeout(5_000) });
    expect({ status: get.status, allow: get.headers.get("allow") }).toEqual({ status: 405, allow: "POST, PUT" });
  });
});
