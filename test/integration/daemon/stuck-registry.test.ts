import { writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, expect, inject, test } from "vitest";
import { startDaemonProc, type DaemonProc } from "../../helpers/daemon.js";
import { tempDir, writeDockerConfig } from "../../helpers/fixtures.js";
import { select, value } from "../../helpers/metrics.js";
import { freePort } from "../../services/procs.js";

const services = inject("services");
const INTERVAL_MS = 1000;
const TIMEOUT_MS = 2500;

let daemon: DaemonProc;
let stuck: Server;
const sockets = new Set<Socket>();
let stuckHost: string;

beforeAll(async () => {
  // Accepts every connection and never says a word.
  stuck = createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => undefined);
  });
  await new Promise<void>((r) => stuck.listen(0, "127.0.0.1", r));
  const addr = stuck.address();
  stuckHost = `127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
  const dir = tempDir("stuck");
  const stuckConfig = writeDockerConfig(join(dir, "stuck"), { [stuckHost]: { username: "someone", password: "stuck-pw-8c1d2e" } });
  const healthyConfig = writeDockerConfig(join(dir, "healthy"), { [services.htpasswd.host]: { username: "alice", password: services.htpasswd.users.alice ?? "" } });
  const port = await freePort();
  const file = join(dir, "ci-prober.yml");
  writeFileSync(
    file,
    [
      `interval: ${INTERVAL_MS}ms`,
      `timeout: ${TIMEOUT_MS}ms`,
      "concurrency: 2",
      `listen_address: 127.0.0.1:${port}`,
      "runners:",
      `  - {name: stuck, docker_config: ${stuckConfig}, images: ["${stuckHost}/ci/canary:latest"]}`,
      `  - {name: healthy, docker_config: ${healthyConfig}, images: ["${services.htpasswd.image}"]}`,
      "",
    ].join("\n"),
  );
  daemon = await startDaemonProc(file, port);
});

afterAll(async () => {
  await daemon?.stop();
  for (const s of sockets) s.destroy();
  await new Promise((r) => stuck.close(r));
});

test("a registry that never answers fails with timeout within its deadline and never delays another runner's probes", async () => {
  const lags: number[] = [];
  const until = Date.now() + 3 * TIMEOUT_MS + 1000;
  let sawTimeout = false;
  while (Date.now() < until) {
    const m = await daemon.metrics();
    const now = Date.now() / 1000;
    for (const s of select(m, "ci_prober_probe_last_run_timestamp_seconds", { runner: "healthy" })) lags.push(now - s.value);
    if (select(m, "ci_prober_probe_failures_total", { runner: "stuck", reason: "timeout" }).length === 2) sawTimeout = true;
    await new Promise((r) => setTimeout(r, 200));
  }
  expect(sawTimeout).toBe(true);
  // Both of the healthy runner's probes were seen, and never fell more than about one interval behind.
  expect(lags.length).toBeGreaterThan(20);
  expect(Math.max(...lags)).toBeLessThan((INTERVAL_MS * 1.6) / 1000);

  const m = await daemon.metrics();
  expect(value(m, "ci_prober_login_success", { runner: "stuck", registry: stuckHost })).toBe(0);
  expect(value(m, "ci_prober_login_success", { runner: "healthy", registry: services.htpasswd.host })).toBe(1);
  expect(value(m, "ci_prober_pull_success", { runner: "healthy", image: services.htpasswd.image })).toBe(1);
  const status = JSON.parse((await daemon.get("/status")).body) as { probes: { key: string; last: { reason: string; error: string; duration_seconds: number } }[] };
  const login = status.probes.find((p) => p.key === `login|stuck|${stuckHost}`)?.last;
  expect(login?.reason).toBe("timeout");
  expect(login?.duration_seconds).toBeGreaterThanOrEqual(TIMEOUT_MS / 1000 - 0.05);
  expect(login?.duration_seconds).toBeLessThan(TIMEOUT_MS / 1000 + 0.5);
  expect(login?.error).toMatch(/^timed out after \d+ms/);
});

test("the stuck runner's probes are in /status with the credential's source, and its password is nowhere", async () => {
  const body = (await daemon.get("/status")).body;
  expect(body).toContain(`#auths[\\"${stuckHost}\\"]`);
  expect(body.includes("stuck-pw-8c1d2e")).toBe(false);
  expect(daemon.log().includes("stuck-pw-8c1d2e")).toBe(false);
});
