import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, inject, test } from "vitest";
import { startDaemonProc, waitFor, type DaemonProc } from "../../helpers/daemon.js";
import { tempDir, writeDockerConfig } from "../../helpers/fixtures.js";
import { select, value, type Sample } from "../../helpers/metrics.js";
import { freePort } from "../../services/procs.js";

// Reload in place (SIGHUP and POST /-/reload) of a real daemon process against the real htpasswd registry.

const services = inject("services");
let daemon: DaemonProc;
let file: string;
let port: number;
let docker: string;

function writeConfig(runners: string[]): void {
  writeFileSync(
    file,
    `interval: 1s\ntimeout: 5s\nlisten_address: 127.0.0.1:${port}\nrunners:\n${runners.map((r) => `  - {name: ${r}, docker_config: ${docker}}`).join("\n")}\n`,
  );
}

beforeAll(async () => {
  const dir = tempDir("reload");
  docker = writeDockerConfig(join(dir, "docker"), {
    [services.htpasswd.host]: { username: "alice", password: services.htpasswd.users.alice ?? "" },
  });
  file = join(dir, "ci-prober.yml");
  port = await freePort();
  writeConfig(["first"]);
  daemon = await startDaemonProc(file, port);
  await waitFor("ready", 15_000, async () => ((await daemon.get("/-/ready")).status === 200 ? true : undefined));
});

afterAll(async () => {
  await daemon?.stop();
});

const runners = async () => [...new Set(select(await daemon.metrics(), "ci_prober_login_success").map((s) => s.labels.runner))].sort();
const logins = (m: Sample[], runner: string) =>
  value(m, "ci_prober_login_duration_seconds_count", { runner, registry: services.htpasswd.host });
const reload = () => fetch(`${daemon.url}/-/reload`, { method: "POST", signal: AbortSignal.timeout(15_000) });

test("SIGHUP applies a changed ci-prober.yml in place: the new runner is probed, the old one's counters go on", async () => {
  expect(await runners()).toEqual(["first"]);
  // Three logins counted before: a restarted process would count from one again.
  const before = await waitFor("three logins", 10_000, async () => {
    const n = logins(await daemon.metrics(), "first");
    return n >= 3 ? n : undefined;
  });
  const loadedAt = value(await daemon.metrics(), "ci_prober_config_last_reload_success_timestamp_seconds");
  writeConfig(["first", "second"]);
  daemon.child.kill("SIGHUP");
  await waitFor("second runner probed", 10_000, async () => ((await runners()).join() === "first,second" ? true : undefined));
  const m = await daemon.metrics();
  expect(logins(m, "first")).toBeGreaterThanOrEqual(before);
  expect(value(m, "ci_prober_config_last_reload_successful")).toBe(1);
  expect(value(m, "ci_prober_config_last_reload_success_timestamp_seconds")).toBeGreaterThan(loadedAt);
  expect(
    daemon
      .log()
      .split("\n")
      .filter((l) => l.includes('"msg":"listening"')),
  ).toHaveLength(1);
  expect(daemon.log()).toContain('"msg":"config reloaded"');
});

test("POST /-/reload with a runner removed: 200, and every series and /status entry of that runner is gone", async () => {
  const before = logins(await daemon.metrics(), "first");
  writeConfig(["first"]);
  const res = await reload();
  expect({ status: res.status, body: await res.text() }).toEqual({ status: 200, body: "config reloaded\n" });
  const m = await daemon.metrics();
  expect(m.filter((s) => s.labels.runner === "second")).toEqual([]);
  expect(logins(m, "first")).toBeGreaterThanOrEqual(before);
  const status = JSON.parse((await daemon.get("/status")).body) as { runners: { name: string }[]; probes: { key: string }[] };
  expect(status.runners.map((r) => r.name)).toEqual(["first"]);
  expect(status.probes.map((p) => p.key)).toEqual([`login|first|${services.htpasswd.host}`]);
});

test("a broken config (SIGHUP, then POST /-/reload) is logged, sets reload_successful 0 and keeps probing with the running one", async () => {
  const okAt = value(await daemon.metrics(), "ci_prober_config_last_reload_success_timestamp_seconds");
  writeFileSync(file, "interval: soon\n");
  daemon.child.kill("SIGHUP");
  await waitFor("reload failure logged", 5000, async () => (daemon.log().includes("config reload failed") ? true : undefined));
  const line = daemon
    .log()
    .split("\n")
    .find((l) => l.includes("config reload failed"));
  const error = `${file}: interval: expected a duration like 30s, got "soon"`;
  expect(JSON.parse(line ?? "{}")).toMatchObject({ level: "error", error });
  const m = await daemon.metrics();
  expect(value(m, "ci_prober_config_last_reload_successful")).toBe(0);
  expect(value(m, "ci_prober_config_last_reload_success_timestamp_seconds")).toBe(okAt);
  const res = await reload();
  expect({ status: res.status, body: await res.text() }).toEqual({ status: 500, body: `failed to reload config: ${error}\n` });
  expect((await daemon.get("/-/healthy")).status).toBe(200);
  expect(await runners()).toEqual(["first"]);
  expect(await daemon.stop()).toBe(0);
});
