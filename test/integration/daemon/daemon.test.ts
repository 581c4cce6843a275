import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, inject, test } from "vitest";
import { startDaemonProc, waitFor, type DaemonProc } from "../../helpers/daemon.js";
import { tempDir, writeDockerConfig } from "../../helpers/fixtures.js";
import { select, value } from "../../helpers/metrics.js";
import { freePort } from "../../services/procs.js";
import { expectLogLine } from "../../helpers/log.js";

const services = inject("services");
const host = services.htpasswd.host;
const image = services.htpasswd.image;
let daemon: DaemonProc;
let toml: string;
let docker: string;

function writeToml(names: string[]): void {
  writeFileSync(
    toml,
    names
      .map(
        (n) =>
          `[[runners]]\n  name = "${n}"\n  executor = "docker"\n  [runners.docker]\n    image = "${image}"\n    pull_policy = ["always"]\n  [runners.cache]\n    Type = "s3"\n`,
      )
      .join("\n"),
  );
}

beforeAll(async () => {
  const dir = tempDir("daemon");
  toml = join(dir, "config.toml");
  docker = writeDockerConfig(join(dir, "docker"), { [host]: { username: "alice", password: services.htpasswd.users.alice ?? "" } });
  writeToml(["alpha", "beta"]);
  const port = await freePort();
  const file = join(dir, "ci-prober.yml");
  writeFileSync(
    file,
    `interval: 1s\ntimeout: 5s\nlisten_address: 127.0.0.1:${port}\nrunners:\n  - {runner_config: ${toml}, docker_config: ${docker}}\n`,
  );
  daemon = await startDaemonProc(file, port);
  await waitFor("ready", 15_000, async () => ((await daemon.get("/-/ready")).status === 200 ? true : undefined));
});

afterAll(async () => {
  await daemon?.stop();
});

test("every [[runners]] of config.toml is probed with the runner user's config.json and pulls its [runners.docker] image", async () => {
  const m = await daemon.metrics();
  for (const runner of ["alpha", "beta"]) {
    expect(value(m, "ci_prober_login_success", { runner, registry: host })).toBe(1);
    expect(value(m, "ci_prober_pull_success", { runner, image })).toBe(1);
    expect(select(m, "ci_prober_credential_info", { runner }).map((s) => s.labels)).toEqual([
      { runner, registry: host, source: `${docker}#auths["${host}"]`, username: "alice", kind: "unknown", in_use: "true" },
    ]);
  }
  expect(select(m, "ci_prober_build_info").map((s) => s.labels)).toEqual([{ version: "0.1.0", node_version: process.version }]);
});

test("a runner removed from config.toml loses every series within an interval or two", async () => {
  writeToml(["alpha"]);
  const m = await waitFor("beta's series gone", 5000, async () => {
    const now = await daemon.metrics();
    return now.some((s) => s.labels.runner === "beta") ? undefined : now;
  });
  expect(value(m, "ci_prober_login_success", { runner: "alpha", registry: host })).toBe(1);
  const status = JSON.parse((await daemon.get("/status")).body) as { runners: { name: string }[]; probes: { key: string }[] };
  expect(status.runners.map((r) => r.name)).toEqual(["alpha"]);
  expect(status.probes.map((p) => p.key).sort()).toEqual([`login|alpha|${host}`, `pull|alpha|${image}`]);
});

test("HTTP: health, readiness, the status page, and nothing else", async () => {
  expect(await daemon.get("/-/healthy")).toEqual({ status: 200, body: "Healthy\n" });
  expect(await daemon.get("/-/ready")).toEqual({ status: 200, body: "Ready\n" });
  const page = await daemon.get("/");
  expect(page.status).toBe(200);
  expect(page.body).toContain('<b class="runner">alpha</b>');
  expect(page.body).toContain(`<td><span class="ok-text">ok</span></td><td>login</td><td class="nowrap"><code>${host}</code></td>`);
  expect(page.body).toContain(`<code>${docker}#auths[&#34;${host}&#34;]</code>`);
  expect((await daemon.get("/nope")).status).toBe(404);
  const post = await fetch(`${daemon.url}/metrics`, { method: "POST", signal: AbortSignal.timeout(5000) });
  expect(post.status).toBe(405);
  const metrics = await fetch(`${daemon.url}/metrics`, { signal: AbortSignal.timeout(5000) });
  expect(metrics.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
});

test("/status shows each probe's step-by-step log and the runner's credentials without secrets", async () => {
  const status = JSON.parse((await daemon.get("/status")).body) as {
    config_file: string;
    runners: { name: string; credentials: Record<string, string | boolean | null>[] }[];
    probes: { key: string; last: { success: boolean; log: string[] } }[];
  };
  expect(status.runners[0]?.credentials).toEqual([
    {
      runner: "alpha",
      registry: host,
      username: "alice",
      kind: "unknown",
      secret_type: "password",
      source: `${docker}#auths["${host}"]`,
      in_use: true,
      shadowed_by: null,
    },
  ]);
  const login = status.probes.find((p) => p.key === `login|alpha|${host}`)?.last;
  expect(login?.success).toBe(true);
  expectLogLine(login?.log, / GET http:\/\/127\.0\.0\.1:\d+\/v2\/ -> 401/);
  expect(login?.log.at(-1)).toMatch(/^\+\d+ms success$/);
  const body = JSON.stringify(status);
  expect(body.includes(services.htpasswd.users.alice ?? "<none>")).toBe(false);
  expect(body.includes(Buffer.from(`alice:${services.htpasswd.users.alice}`).toString("base64"))).toBe(false);
});
