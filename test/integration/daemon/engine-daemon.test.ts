import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, inject, test } from "vitest";
import { startDaemonProc, waitFor, type DaemonProc } from "../../helpers/daemon.js";
import { createGitlabUser, setGitlabUserState, tempDir, writeDockerConfig } from "../../helpers/fixtures.js";
import { select, value } from "../../helpers/metrics.js";
import { dockerCli, startDockerd } from "../../services/index.js";
import { freePort, run, type Proc } from "../../services/procs.js";

// Engine mode end to end: the daemon logs in, pulls and runs the canary job
// through a runner's own dockerd (its own here: the daemon sweeps every
// ci-prober container from the engines it uses).

const services = inject("services");
const registry = services.token.host;
const image = services.token.image;
let dockerd: Proc;
let dockerHost: string;
let daemon: DaemonProc;
let user: { username: string; password: string };
let leftover: string;

beforeAll(async () => {
  const dir = tempDir("engine-daemon");
  mkdirSync(join(dir, "d"));
  const started = await startDockerd(join(dir, "d"));
  dockerd = started.proc;
  dockerHost = started.host;
  // A canary container left by a crashed prober: the daemon removes it at start.
  await run(dockerCli(), ["-H", dockerHost, "import", services.busyboxTar, "leftover:1"]);
  leftover = (await run(dockerCli(), ["-H", dockerHost, "create", "--label", "io.ci-prober.canary=true", "leftover:1", "sh"])).trim();
  user = await createGitlabUser(services.gitlab.url, { username: `engine-daemon-${Date.now()}` });
  const docker = writeDockerConfig(join(dir, "docker"), { [registry]: user });
  const port = await freePort();
  const file = join(dir, "ci-prober.yml");
  writeFileSync(
    file,
    [
      "interval: 1s",
      "timeout: 20s",
      `listen_address: 127.0.0.1:${port}`,
      "runners:",
      `  - {name: docker-ci, mode: engine, docker_host: "${dockerHost}", docker_config: ${docker}, images: ["${image}"]}`,
      "canary:",
      `  local: {image: "${image}", command: [sh, -c, "echo canary says ok"], expect_output: "canary says ok"}`,
      "",
    ].join("\n"),
  );
  daemon = await startDaemonProc(file, port);
  await waitFor("ready", 30_000, async () => ((await daemon.get("/-/ready")).status === 200 ? true : undefined));
});

afterAll(async () => {
  await daemon?.stop();
  await dockerd?.stop();
});

test("login, pull and the local canary run through the runner's engine; a leftover canary container was removed at start", async () => {
  const m = await daemon.metrics();
  expect(value(m, "ci_prober_login_success", { runner: "docker-ci", registry })).toBe(1);
  expect(value(m, "ci_prober_pull_success", { runner: "docker-ci", image })).toBe(1);
  expect(value(m, "ci_prober_canary_success", { runner: "docker-ci", canary: "local" })).toBe(1);
  const ids = await run(dockerCli(), ["-H", dockerHost, "ps", "-a", "-q", "--no-trunc", "--filter", "label=io.ci-prober.canary"]);
  expect(ids.includes(leftover)).toBe(false);
  expect(daemon.log()).toContain('"msg":"removed leftover canary containers"');
});

test("a blocked user turns login, pull and canary to 0 with unauthorized", async () => {
  await setGitlabUserState(services.gitlab.url, user.username, "blocked");
  const m = await waitFor("all three at 0", 20_000, async () => {
    const now = await daemon.metrics();
    return value(now, "ci_prober_login_success", { runner: "docker-ci", registry }) === 0 &&
      value(now, "ci_prober_pull_success", { runner: "docker-ci", image }) === 0 &&
      value(now, "ci_prober_canary_success", { runner: "docker-ci", canary: "local" }) === 0
      ? now
      : undefined;
  });
  const reasons = select(m, "ci_prober_probe_failures_total", { runner: "docker-ci" })
    .map((s) => `${s.labels.probe}:${s.labels.reason}`)
    .sort();
  expect(reasons).toEqual(["canary:unauthorized", "login:unauthorized", "pull:unauthorized"]);
});

test("neither the password nor the X-Registry-Auth value reaches /status, /metrics or the log; SIGTERM leaves no canary container", async () => {
  const header = Buffer.from(JSON.stringify({ username: user.username, password: user.password, serveraddress: registry })).toString(
    "base64url",
  );
  const texts = [(await daemon.get("/status")).body, (await daemon.get("/metrics")).body, daemon.log()];
  for (const t of texts) {
    expect(t.includes(user.password)).toBe(false);
    expect(t.includes(header.slice(0, 40))).toBe(false);
  }
  expect(await daemon.stop()).toBe(0);
  expect(await run(dockerCli(), ["-H", dockerHost, "ps", "-a", "-q", "--filter", "label=io.ci-prober.canary"])).toBe("");
});
