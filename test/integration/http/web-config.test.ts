import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify as stringifyYaml } from "yaml";
import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";
import { MAIN, runCli } from "../../helpers/cli.js";
import { waitFor } from "../../helpers/daemon.js";
import { query, targetsResponseSchemaLoose } from "./prometheus.js";
import { tempDir, writeDockerConfig } from "../../helpers/fixtures.js";
import { freePort, startProc, waitForListen, type Proc } from "../../services/procs.js";
import { makeTlsMaterial } from "../../services/tls.js";

// The HTTP endpoints behind an exporter-toolkit web config: TLS with client certificates and bcrypt
// basic auth, checked with curl and with the real Prometheus scraping through both.

const services = inject("services");
const dir = tempDir("web-config");
const PASSWORD = `scrape-pw-${process.pid}-7c1e`;
const NEW_PASSWORD = `rotated-pw-${process.pid}-2b9d`;
const PATHS = ["/metrics", "/-/healthy", "/-/ready", "/status", "/"];

interface Daemon {
  child: ChildProcess;
  port: number;
  log(): string;
  stop(): Promise<number | null>;
}

/** `htpasswd -nBC 10`, as exporter-toolkit's docs make the hashes. */
async function bcryptHash(password: string): Promise<string> {
  const out = await curlish("htpasswd", ["-nbB", "-C", "10", "", password]);
  return out.stdout.trim().replace(/^:/, "");
}

function curlish(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

interface CurlResult {
  code: number | null;
  status: number;
  headers: Record<string, string>;
  body: string;
  stderr: string;
}

/** curl as an operator would type it; status 0 when no HTTP answer came. */
async function curl(url: string, opts: { ca?: string; cert?: string; user?: string } = {}): Promise<CurlResult> {
  const args = ["-sS", "-i", "--max-time", "10"];
  if (opts.ca) args.push("--cacert", opts.ca);
  if (opts.cert) args.push("--cert", join(opts.cert, "cert.pem"), "--key", join(opts.cert, "key.pem"));
  if (opts.user) args.push("-u", opts.user);
  const r = await curlish("curl", [...args, url]);
  const [head = "", ...rest] = r.stdout.split("\r\n\r\n");
  const lines = head.split("\r\n");
  const status = Number(/^HTTP\/[\d.]+ (\d+)/.exec(lines[0] ?? "")?.[1] ?? 0);
  const headers = Object.fromEntries(
    lines.slice(1).map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]),
  );
  return { code: r.code, status, headers, body: rest.join("\r\n\r\n"), stderr: r.stderr };
}

async function startDaemon(name: string, webConfig: string, ready: (port: number) => Promise<boolean>): Promise<Daemon> {
  const port = await freePort();
  const docker = writeDockerConfig(join(dir, name, ".docker"), {
    [services.htpasswd.host]: { username: "alice", password: services.htpasswd.users.alice ?? "" },
  });
  const config = join(dir, name, "ci-prober.yml");
  writeFileSync(
    config,
    [
      "interval: 1s",
      "timeout: 5s",
      `listen_address: 127.0.0.1:${port}`,
      "runners:",
      `  - {name: web-runner, docker_config: ${docker}, mode: direct, images: []}`,
      "",
    ].join("\n"),
  );
  const child = spawn(process.execPath, [MAIN, "run", "--config", config, "--web.config.file", webConfig], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", CI_PROBER_LOG_LEVEL: "debug" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  await waitFor(`${name} daemon ready`, 20_000, async () => {
    if (child.exitCode !== null) throw new Error(`daemon exited ${child.exitCode}: ${output}`);
    return (await ready(port)) ? true : undefined;
  });
  return {
    child,
    port,
    log: () => output,
    async stop() {
      if (child.exitCode === null) child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

const tls = makeTlsMaterial(join(dir, "tls"));
const other = makeTlsMaterial(join(dir, "other-ca"));
let hash = "";
let newHash = "";
let daemon: Daemon;
let base = "";
const webFile = join(dir, "web.yml");
const good = { ca: tls.server.ca, cert: tls.client };

function writeWeb(users: Record<string, string>): void {
  // Relative paths resolve against the web config's directory, as in exporter-toolkit.
  writeFileSync(
    webFile,
    stringifyYaml({
      tls_server_config: {
        cert_file: "tls/server/cert.pem",
        key_file: "tls/server/key.pem",
        client_auth_type: "RequireAndVerifyClientCert",
        client_ca_file: "tls/ca.pem",
      },
      http_server_config: { headers: { "X-Frame-Options": "deny", "Strict-Transport-Security": "max-age=31536000" } },
      basic_auth_users: users,
    }),
  );
}

beforeAll(async () => {
  hash = await bcryptHash(PASSWORD);
  newHash = await bcryptHash(NEW_PASSWORD);
  writeWeb({ prometheus: hash });
  daemon = await startDaemon(
    "tls",
    webFile,
    async (port) => (await curl(`https://127.0.0.1:${port}/-/ready`, { ...good, user: `prometheus:${PASSWORD}` })).status === 200,
  );
  base = `https://127.0.0.1:${daemon.port}`;
});

afterAll(async () => {
  await daemon?.stop();
});

describe("TLS with client certificates and basic auth in front of every endpoint", () => {
  test("with the client certificate and the password, curl gets every path, each with the configured headers", async () => {
    for (const path of PATHS) {
      const r = await curl(`${base}${path}`, { ...good, user: `prometheus:${PASSWORD}` });
      expect([path, r.status, r.headers["x-frame-options"], r.headers["strict-transport-security"]]).toEqual([
        path,
        200,
        "deny",
        "max-age=31536000",
      ]);
    }
    expect((await curl(`${base}/-/healthy`, { ...good, user: `prometheus:${PASSWORD}` })).body).toBe("Healthy\n");
  });

  test("a wrong password, an unknown user and no password get 401 with WWW-Authenticate: Basic on every path, /-/healthy included", async () => {
    for (const path of PATHS) {
      for (const user of ["prometheus:wrong-password", `nobody:${PASSWORD}`, undefined]) {
        const r = await curl(`${base}${path}`, { ...good, ...(user ? { user } : {}) });
        expect([path, user, r.status, r.headers["www-authenticate"], r.body]).toEqual([path, user, 401, "Basic", "Unauthorized\n"]);
      }
    }
  });

  test("without a client certificate, or with one from another CA, or in plain HTTP, no request is answered", async () => {
    const none = await curl(`${base}/metrics`, { ca: tls.server.ca, user: `prometheus:${PASSWORD}` });
    expect([none.code, none.status]).toEqual([56, 0]);
    expect(none.stderr).toContain("alert certificate required");
    const foreign = await curl(`${base}/metrics`, { ca: tls.server.ca, cert: other.client, user: `prometheus:${PASSWORD}` });
    expect(foreign.status).toBe(0);
    expect(foreign.code).not.toBe(0);
    const plain = await curl(`http://127.0.0.1:${daemon.port}/metrics`, { user: `prometheus:${PASSWORD}` });
    expect(plain.status).toBe(0);
    expect(plain.code).not.toBe(0);
  });
});

describe("the real Prometheus scrapes through TLS and basic auth", () => {
  let prom: Proc | undefined;
  afterAll(async () => {
    await prom?.stop();
  });

  test("with the CA, the client certificate and the password up == 1 and ci-prober's series arrive; with a wrong password up == 0 with a 401", async () => {
    const promPort = await freePort();
    const promConfig = join(dir, "prometheus.yml");
    const tlsConfig = { ca_file: tls.server.ca, cert_file: join(tls.client, "cert.pem"), key_file: join(tls.client, "key.pem") };
    const target = { static_configs: [{ targets: [`127.0.0.1:${daemon.port}`] }] };
    writeFileSync(
      promConfig,
      stringifyYaml({
        global: { scrape_interval: "1s", scrape_timeout: "1s" },
        scrape_configs: [
          {
            job_name: "ci-prober",
            scheme: "https",
            tls_config: tlsConfig,
            basic_auth: { username: "prometheus", password: PASSWORD },
            ...target,
          },
          {
            job_name: "ci-prober-wrong-password",
            scheme: "https",
            tls_config: tlsConfig,
            basic_auth: { username: "prometheus", password: "wrong" },
            ...target,
          },
        ],
      }),
    );
    prom = startProc(
      "prometheus-web",
      "prometheus",
      [`--config.file=${promConfig}`, `--storage.tsdb.path=${join(dir, "tsdb")}`, `--web.listen-address=127.0.0.1:${promPort}`],
      join(dir, "prometheus.log"),
    );
    await waitForListen({ port: promPort }, 30_000, prom);
    const url = `http://127.0.0.1:${promPort}`;
    const up = await waitFor("both targets scraped", 30_000, async () => {
      const samples = await query(url, "up", AbortSignal.timeout(5000));
      return samples.length === 2 ? Object.fromEntries(samples.map((s) => [s.metric.job, s.value])) : undefined;
    });
    expect(up).toEqual({ "ci-prober": 1, "ci-prober-wrong-password": 0 });
    expect((await query(url, 'count(ci_prober_build_info{job="ci-prober"})', AbortSignal.timeout(5000)))[0]?.value).toBe(1);
    const res = await fetch(`${url}/api/v1/targets`, { signal: AbortSignal.timeout(5000) });
    const wrong = targetsResponseSchemaLoose
      .parse(await res.json())
      .data.activeTargets.find((t) => t.labels.job === "ci-prober-wrong-password");
    expect(wrong?.lastError).toBe("server returned HTTP status 401 Unauthorized");
  });
});

describe("the web config is read again on every request and connection", () => {
  test("a changed password applies without a restart", async () => {
    writeWeb({ prometheus: newHash });
    expect((await curl(`${base}/metrics`, { ...good, user: `prometheus:${PASSWORD}` })).status).toBe(401);
    expect((await curl(`${base}/metrics`, { ...good, user: `prometheus:${NEW_PASSWORD}` })).status).toBe(200);
  });

  test("a rotated certificate is served from the next connection on", async () => {
    copyFileSync(tls.server.cert, join(dir, "cert.pem.orig"));
    copyFileSync(tls.server.key, join(dir, "key.pem.orig"));
    copyFileSync(other.server.cert, tls.server.cert);
    copyFileSync(other.server.key, tls.server.key);
    try {
      const oldCa = await curl(`${base}/-/healthy`, { ...good, user: `prometheus:${NEW_PASSWORD}` });
      expect([oldCa.code, oldCa.status]).toEqual([60, 0]);
      expect((await curl(`${base}/-/healthy`, { ca: other.server.ca, cert: tls.client, user: `prometheus:${NEW_PASSWORD}` })).status).toBe(
        200,
      );
    } finally {
      copyFileSync(join(dir, "cert.pem.orig"), tls.server.cert);
      copyFileSync(join(dir, "key.pem.orig"), tls.server.key);
    }
  });

  test("a broken file makes every handshake fail, logged once with the file and the reason, never quoting a hash or a password", async () => {
    writeFileSync(webFile, `basic_auth_users:\n  prometheus: ${newHash}\n  extra: [\n`);
    for (let i = 0; i < 3; i++) {
      const r = await curl(`${base}/metrics`, { ...good, user: `prometheus:${NEW_PASSWORD}` });
      expect(r.status).toBe(0);
    }
    const refusals = daemon
      .log()
      .split("\n")
      .filter((l) => l.includes('"msg":"web config unusable: refusing requests"'));
    expect(refusals.map((l) => JSON.parse(l) as { file: string; level: string; error: string })).toEqual([
      expect.objectContaining({
        level: "error",
        file: webFile,
        error: expect.stringMatching(new RegExp(`^web config ${webFile}: invalid YAML: `)),
      }),
    ]);
    for (const secret of [PASSWORD, NEW_PASSWORD, hash, newHash, hash.slice(7), newHash.slice(7)])
      expect(daemon.log()).not.toContain(secret);
  });
});

describe("without TLS", () => {
  let plain: Daemon;
  const plainWeb = join(dir, "plain-web.yml");
  beforeAll(async () => {
    writeFileSync(plainWeb, `basic_auth_users:\n  prometheus: ${hash}\n`);
    plain = await startDaemon(
      "plain",
      plainWeb,
      async (port) => (await curl(`http://127.0.0.1:${port}/-/healthy`, { user: `prometheus:${PASSWORD}` })).status === 200,
    );
  });
  afterAll(async () => {
    await plain?.stop();
  });

  test("basic auth alone guards plain HTTP; a broken file, or TLS added after start, is 500 for every request, never served open", async () => {
    const url = `http://127.0.0.1:${plain.port}`;
    expect((await curl(`${url}/status`)).status).toBe(401);
    writeFileSync(plainWeb, `basic_auth_users:\n  prometheus: ${hash}\nunknown_key: 1\n`);
    for (const path of PATHS) {
      const r = await curl(`${url}${path}`, { user: `prometheus:${PASSWORD}` });
      expect([path, r.status, r.body]).toEqual([path, 500, "Internal Server Error\n"]);
    }
    writeFileSync(plainWeb, `tls_server_config:\n  cert_file: ${tls.server.cert}\n  key_file: ${tls.server.key}\n`);
    expect((await curl(`${url}/metrics`)).status).toBe(500);
    const errors = plain
      .log()
      .split("\n")
      .filter((l) => l.includes('"msg":"web config unusable: refusing requests"'))
      .map((l) => (JSON.parse(l) as { error: string }).error);
    expect(errors).toEqual([
      `web config ${plainWeb}: unknown key "unknown_key"`,
      `web config ${plainWeb}: tls_server_config was added after start: restart ci-prober to serve TLS`,
    ]);
    writeFileSync(plainWeb, `basic_auth_users:\n  prometheus: ${hash}\n`);
    expect((await curl(`${url}/metrics`, { user: `prometheus:${PASSWORD}` })).status).toBe(200);
    expect(plain.log()).toContain('"msg":"web config usable again"');
  });

  test("SIGTERM stops both daemons with exit 0", async () => {
    expect(await plain.stop()).toBe(0);
    expect(await daemon.stop()).toBe(0);
  });
});

describe("a web config that is broken at start is ci-prober's own bad config", () => {
  test("run exits 2 naming the file and the key; check-config too; check-config summarises a good one", async () => {
    const bad = join(dir, "bad-web.yml");
    writeFileSync(bad, "tls_server_config:\n  cert_file: nope.pem\n  key_file: nope.key\n");
    const config = join(dir, "bad-ci-prober.yml");
    writeFileSync(config, `listen_address: 127.0.0.1:0\nweb_config_file: bad-web.yml\nrunners: []\n`);
    const run = await runCli(["run", "--config", config]);
    expect([run.code, run.stderr.trim()]).toEqual([
      2,
      `ci-prober: web config ${bad}: tls_server_config.cert_file ${join(dir, "nope.pem")}: no such file`,
    ]);
    const check = await runCli(["check-config", "--config", config]);
    expect([check.code, check.stderr.trim()]).toEqual([
      2,
      `ci-prober: web config ${bad}: tls_server_config.cert_file ${join(dir, "nope.pem")}: no such file`,
    ]);
    const flag = await runCli(["once", "--config", config, "--web.config.file", bad]);
    expect([flag.code, flag.stderr.trim()]).toEqual([2, "ci-prober: --web.config.file applies to run, not once"]);
    writeWeb({ prometheus: hash });
    writeFileSync(config, `listen_address: 127.0.0.1:0\nweb_config_file: web.yml\nrunners: []\n`);
    const ok = await runCli(["check-config", "--config", config]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(`web config: ${webFile} (TLS, client certificates: RequireAndVerifyClientCert, basic auth: 1 user)\n`);
  });
});
