import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, inject, test } from "vitest";
import { runCli } from "../../helpers/cli.js";
import { startDaemonProc, waitFor, type DaemonProc } from "../../helpers/daemon.js";
import { tempDir, writeDockerConfig } from "../../helpers/fixtures.js";
import { expectLogLine } from "../../helpers/log.js";
import { select, value } from "../../helpers/metrics.js";
import { startRegistry } from "../../services/index.js";
import { freePort, run, type Proc } from "../../services/procs.js";
import { makeTlsMaterial } from "../../services/tls.js";

// A registry that speaks TLS with the company's own CA (registries[host].ca_file):
// the daemon logs in and pulls over HTTPS and exports the certificate's expiry.

const services = inject("services");
let registry: Proc;
let host: string;
let image: string;
let dir: string;
let caFile: string;
let notAfter: number;
let daemon: DaemonProc;
const creds = { username: "admin", password: services.htpasswd.users.admin ?? "" };

beforeAll(async () => {
  dir = tempDir("tls-registry");
  const tls = makeTlsMaterial(join(dir, "tls"));
  caFile = tls.server.ca;
  const port = await freePort();
  host = `127.0.0.1:${port}`;
  image = `${host}/ci/canary:latest`;
  const htpasswd = join(services.tmp, "htpasswd");
  registry = await startRegistry(
    dir,
    "registry-tls",
    port,
    `auth:\n  htpasswd:\n    realm: ci-prober-test\n    path: ${htpasswd}\n`,
    tls.server,
  );
  const auth = `${creds.username}:${creds.password}`;
  await run("skopeo", [
    "copy",
    "--quiet",
    "--src-tls-verify=false",
    "--src-creds",
    auth,
    "--dest-tls-verify=false",
    "--dest-creds",
    auth,
    `docker://${services.htpasswd.image}`,
    `docker://${image}`,
  ]);
  const end = execFileSync("openssl", ["x509", "-enddate", "-noout", "-in", tls.server.cert])
    .toString()
    .trim()
    .replace(/^notAfter=/, "");
  notAfter = Math.floor(Date.parse(end) / 1000);
  const docker = writeDockerConfig(join(dir, "docker"), { [host]: creds });
  const listen = await freePort();
  const file = join(dir, "ci-prober.yml");
  writeFileSync(
    file,
    `interval: 1s\ntimeout: 10s\nlisten_address: 127.0.0.1:${listen}\nregistries:\n  "${host}": {ca_file: ${caFile}}\nrunners:\n  - {name: r1, docker_config: ${docker}, images: ["${image}"]}\n`,
  );
  daemon = await startDaemonProc(file, listen);
  await waitFor("ready", 15_000, async () => ((await daemon.get("/-/ready")).status === 200 ? true : undefined));
});

afterAll(async () => {
  await daemon?.stop();
  await registry?.stop();
});

test("login and pull go over HTTPS with the configured CA, and the certificate's notAfter is exported", async () => {
  const m = await waitFor("certificate expiry", 10_000, async () => {
    const now = await daemon.metrics();
    return select(now, "ci_prober_tls_cert_expiry_timestamp_seconds").length === 1 ? now : undefined;
  });
  expect(value(m, "ci_prober_login_success", { runner: "r1", registry: host })).toBe(1);
  expect(value(m, "ci_prober_pull_success", { runner: "r1", image })).toBe(1);
  expect(value(m, "ci_prober_tls_cert_expiry_timestamp_seconds", { registry: host })).toBe(notAfter);
  const status = JSON.parse((await daemon.get("/status")).body) as { probes: { key: string; last: { log: string[] } }[] };
  expectLogLine(status.probes.find((p) => p.key === `login|r1|${host}`)?.last.log, { includes: `GET https://${host}/v2/` });
});

test("a CA that did not sign the registry's certificate fails with reason tls", async () => {
  const other = makeTlsMaterial(join(dir, "other"));
  const docker = writeDockerConfig(join(dir, "docker2"), { [host]: creds });
  const file = join(dir, "wrong-ca.yml");
  writeFileSync(
    file,
    `timeout: 10s\nregistries:\n  "${host}": {ca_file: ${other.server.ca}}\nrunners:\n  - {name: r1, docker_config: ${docker}, images: []}\n`,
  );
  const r = await runCli(["once", "--json", "--config", file]);
  expect(r.code).toBe(1);
  const [login] = JSON.parse(r.stdout) as { reason: string; error: string }[];
  expect(login?.reason).toBe("tls");
  expect(login?.error).toBe(`GET https://${host}/v2/: unable to verify the first certificate`);
});
