import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, inject, test } from "vitest";
import { runCli } from "../../helpers/cli.js";
import { tempDir, writeDockerConfig } from "../../helpers/fixtures.js";
import { startDockerd } from "../../services/index.js";
import { freePort, type Proc } from "../../services/procs.js";
import { makeTlsMaterial } from "../../services/tls.js";

// A runner whose engine is tcp:// with TLS: gitlab-runner's [runners.docker]
// host plus tls_cert_path (ca.pem, cert.pem, key.pem). A real dockerd with --tlsverify.

const services = inject("services");
let dockerd: Proc;
let host: string;
let certs: string;
let dir: string;

beforeAll(async () => {
  dir = tempDir("engine-tls");
  const tls = makeTlsMaterial(join(dir, "tls"));
  certs = tls.client;
  const port = await freePort();
  mkdirSync(join(dir, "d"));
  dockerd = (await startDockerd(join(dir, "d"), { port, ...tls.server })).proc;
  host = `tcp://127.0.0.1:${port}`;
});

afterAll(async () => {
  await dockerd?.stop();
});

function config(name: string, runner: string): string {
  const docker = writeDockerConfig(join(dir, name), {
    [services.htpasswd.host]: { username: "alice", password: services.htpasswd.users.alice ?? "" },
  });
  const file = join(dir, `${name}.yml`);
  writeFileSync(
    file,
    `timeout: 20s\nrunners:\n  - {name: tls-runner, mode: engine, docker_host: "${host}", docker_config: ${docker}, images: ["${services.htpasswd.image}"]${runner}}\n`,
  );
  return file;
}

test("with tls_cert_path the engine over tcp:// logs in and pulls", async () => {
  const r = await runCli(["once", "--json", "--config", config("with-certs", `, tls_cert_path: ${certs}`)], { timeoutMs: 60_000 });
  expect(r.stderr).toBe("");
  expect((JSON.parse(r.stdout) as { probe: string; success: boolean }[]).map((p) => [p.probe, p.success])).toEqual([
    ["login", true],
    ["pull", true],
  ]);
  expect(r.code).toBe(0);
});

test("without tls_cert_path the runner speaks plain HTTP to the TLS engine: reason tls, with the engine's own words", async () => {
  const r = await runCli(["once", "--json", "--config", config("without-certs", "")], { timeoutMs: 60_000 });
  expect(r.code).toBe(1);
  const rows = JSON.parse(r.stdout) as { probe: string; reason: string; error: string }[];
  expect(rows.map((p) => [p.probe, p.reason])).toEqual([
    ["login", "tls"],
    ["pull", "tls"],
  ]);
  expect(rows[0]?.error).toContain("Client sent an HTTP request to an HTTPS server");
});
