import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, inject, test } from "vitest";
import { startDaemonProc, waitFor, type DaemonProc } from "../../helpers/daemon.js";
import { tempDir, writeDockerConfig } from "../../helpers/fixtures.js";
import { select } from "../../helpers/metrics.js";
import { freePort } from "../../services/procs.js";

const services = inject("services");
let daemon: DaemonProc;
let file: string;
let port: number;
let docker: string;

function writeConfig(runners: string[]): void {
  writeFileSync(file, `interval: 1s\ntimeout: 5s\nlisten_address: 127.0.0.1:${port}\nrunners:\n${runners.map((r) => `  - {name: ${r}, docker_config: ${docker}}`).join("\n")}\n`);
}

beforeAll(async () => {
  const dir = tempDir("reload");
  docker = writeDockerConfig(join(dir, "docker"), { [services.htpasswd.host]: { username: "alice", password: services.htpasswd.users.alice ?? "" } });
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

test("SIGHUP applies a changed ci-prober.yml without a restart", async () => {
  expect(await runners()).toEqual(["first"]);
  writeConfig(["first", "second"]);
  daemon.child.kill("SIGHUP");
  await waitFor("second runner probed", 10_000, async () => ((await runners()).join() === "first,second" ? true : undefined));
  expect(daemon.log()).toContain('"msg":"config reloaded"');
});

test("SIGHUP with a broken config logs one line and keeps probing with the running one", async () => {
  writeFileSync(file, "interval: soon\n");
  daemon.child.kill("SIGHUP");
  await waitFor("reload failure logged", 5000, async () => (daemon.log().includes("config reload failed") ? true : undefined));
  const line = daemon.log().split("\n").find((l) => l.includes("config reload failed"));
  expect(JSON.parse(line ?? "{}")).toMatchObject({ level: "error", error: `${file}: interval: expected a duration like 30s, got "soon"` });
  expect((await daemon.get("/-/healthy")).status).toBe(200);
  expect(await runners()).toEqual(["first", "second"]);
  expect(await daemon.stop()).toBe(0);
});
