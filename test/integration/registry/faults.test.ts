import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, test } from "vitest";
import { directLogin, directPull } from "../../../src/probes/direct.js";
import { runProbe } from "../../../src/probes/run.js";
import { run } from "../../services/procs.js";
import { type FaultProxy, startFaultProxy, startSilentServer } from "../../helpers/fault-proxy.js";
import { tempDir } from "../../helpers/fixtures.js";
import { testConfig } from "../../helpers/config.js";
import { passwordCredential, probeContext, RUNNER } from "../../helpers/registry.js";
import { makeTlsMaterial } from "../../services/tls.js";
import type { ProbeResult } from "../../../src/types.js";
import { expectLogLine } from "../../helpers/log.js";

const services = inject("services");
const ht = services.htpasswd;
const password = ht.users.alice ?? "";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";

let proxy: FaultProxy;
/** The real ci/canary manifest as the registry serves it. */
let manifest: { raw: string; digest: string; config: { digest: string; size: number }; layers: { digest: string; size: number }[] };

beforeAll(async () => {
  proxy = await startFaultProxy(ht.host);
  const raw = await run("skopeo", ["inspect", "--raw", "--tls-verify=false", "--creds", `alice:${password}`, `docker://${ht.image}`]);
  manifest = { raw, digest: `sha256:${createHash("sha256").update(raw).digest("hex")}`, ...JSON.parse(raw) };
});
afterAll(() => proxy.close());
beforeEach(() => {
  proxy.setRules([]);
  proxy.requests.length = 0;
  proxy.storageRequests.length = 0;
});

/**
 * Every case runs beside another runner pulling the same image from the real registry directly, in
 * the same process (shared pools, buffers, TLS contexts): that one must pass, whatever the fault.
 */
async function withNeighbour(fault: Promise<ProbeResult>): Promise<ProbeResult> {
  const credential = { ...passwordCredential(ht.host, "alice", password), runner: "runner-b" };
  const ctx = { ...probeContext({ target: ht.image, credential }), runner: { ...RUNNER, name: "runner-b" } };
  const [result, neighbour] = await Promise.all([fault, runProbe("pull", ctx, directPull)]);
  const seen = { runner: neighbour.runner, success: neighbour.success, error: neighbour.error };
  expect(seen).toEqual({ runner: "runner-b", success: true, error: undefined });
  return result;
}

function pull(target: string, opts: { platform?: string; timeoutMs?: number } = {}) {
  const config = testConfig({
    ...(opts.platform ? { platform: opts.platform } : {}),
    ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
  });
  return withNeighbour(
    runProbe("pull", probeContext({ target, config, credential: passwordCredential(proxy.host, "alice", password) }), directPull),
  );
}

function login(host: string, timeoutMs = 10_000) {
  const ctx = probeContext({ target: host, credential: passwordCredential(host, "alice", password), config: testConfig({ timeoutMs }) });
  return withNeighbour(runProbe("login", ctx, directLogin));
}

const MANIFEST_PATH = /^\/v2\/ci\/canary\/manifests\//;
const LAYER_PATH = () => new RegExp(`^/v2/ci/canary/blobs/${manifest.layers[0]?.digest}$`);

describe("direct pull through a fault-injecting registry", () => {
  test("passes through the proxy untouched (the baseline for the faults below)", async () => {
    const result = await pull(`${proxy.host}/ci/canary:latest`);
    expect(result.success).toBe(true);
    expect(result.bytes).toBe(manifest.config.size + manifest.layers.reduce((s, l) => s + l.size, 0));
  });

  test("is forbidden when the registry answers 403 DENIED", async () => {
    const body = JSON.stringify({ errors: [{ code: "DENIED", message: "requested access to the resource is denied" }] });
    proxy.setRules([{ path: MANIFEST_PATH, action: { kind: "respond", status: 403, body } }]);
    const result = await pull(`${proxy.host}/ci/canary:latest`);
    expect(result.reason).toBe("forbidden");
    expect(result.error).toBe(
      `GET http://${proxy.host}/v2/ci/canary/manifests/latest: HTTP 403: requested access to the resource is denied`,
    );
  });

  test("is rate_limited when the registry answers 429 TOOMANYREQUESTS", async () => {
    const body = JSON.stringify({ errors: [{ code: "TOOMANYREQUESTS", message: "You have reached your pull rate limit." }] });
    proxy.setRules([{ path: MANIFEST_PATH, action: { kind: "respond", status: 429, body, headers: { "retry-after": "60" } } }]);
    const result = await pull(`${proxy.host}/ci/canary:latest`);
    expect(result.reason).toBe("rate_limited");
    expect(result.error).toBe(`GET http://${proxy.host}/v2/ci/canary/manifests/latest: HTTP 429: You have reached your pull rate limit.`);
  });

  test("is server_error when a blob answers 503 with a non-JSON body", async () => {
    proxy.setRules([{ path: LAYER_PATH(), action: { kind: "respond", status: 503, body: "<html>upstream unavailable</html>" } }]);
    const result = await pull(`${proxy.host}/ci/canary:latest`);
    expect(result.reason).toBe("server_error");
    expect(result.error).toBe(`GET http://${proxy.host}/v2/ci/canary/blobs/${manifest.layers[0]?.digest}: HTTP 503`);
  });

  test("is server_error when /v2/ itself answers 500", async () => {
    proxy.setRules([{ path: /^\/v2\/$/, action: { kind: "respond", status: 500, body: "{}" } }]);
    const result = await login(proxy.host);
    expect(result.reason).toBe("server_error");
    expect(result.error).toBe(`GET http://${proxy.host}/v2/: HTTP 500`);
  });

  test("is bad_response for a manifest cut off before its Content-Length", async () => {
    proxy.setRules([{ path: MANIFEST_PATH, action: { kind: "truncate", keepBytes: 100 } }]);
    const result = await pull(`${proxy.host}/ci/canary:latest`);
    expect(result.reason).toBe("bad_response");
    expect(result.error).toBe(
      `GET http://${proxy.host}/v2/ci/canary/manifests/latest: response ended after 100 of ${manifest.raw.length} bytes`,
    );
  });

  test("is bad_response for a manifest over 4 MiB, announced by Content-Length", async () => {
    const body = Buffer.alloc(4 * 1024 * 1024 + 1, 0x20);
    proxy.setRules([{ path: MANIFEST_PATH, action: { kind: "respond", status: 200, body, headers: { "content-type": DOCKER_MANIFEST } } }]);
    const result = await pull(`${proxy.host}/ci/canary:latest`);
    expect(result.reason).toBe("bad_response");
    expect(result.error).toBe(
      `GET http://${proxy.host}/v2/ci/canary/manifests/latest: response of 4194305 bytes is over the 4194304-byte limit`,
    );
  });

  test("is bad_response for a chunked manifest that grows over 4 MiB", async () => {
    const body = Buffer.alloc(5 * 1024 * 1024, 0x20);
    proxy.setRules([
      { path: MANIFEST_PATH, action: { kind: "respond", status: 200, body, chunked: true, headers: { "content-type": DOCKER_MANIFEST } } },
    ]);
    const result = await pull(`${proxy.host}/ci/canary:latest`);
    expect(result.reason).toBe("bad_response");
    expect(result.error).toBe(`GET http://${proxy.host}/v2/ci/canary/manifests/latest: response is over the 4194304-byte limit`);
  });

  test("is bad_response for a manifest that is not JSON", async () => {
    proxy.setRules([{ path: MANIFEST_PATH, action: { kind: "replace", body: "<html>login</html>", contentType: DOCKER_MANIFEST } }]);
    const result = await pull(`${proxy.host}/ci/canary:latest`);
    expect(result.reason).toBe("bad_response");
    expect(result.error).toBe(`GET http://${proxy.host}/v2/ci/canary/manifests/latest: manifest is not JSON (18 bytes)`);
  });

  test("is digest_mismatch when a layer's content does not hash to its digest", async () => {
    proxy.setRules([{ path: LAYER_PATH(), action: { kind: "corrupt" } }]);
    const result = await pull(`${proxy.host}/ci/canary:latest`);
    const layer = manifest.layers[0]?.digest ?? "";
    expect(result.reason).toBe("digest_mismatch");
    expect(result.error).toMatch(
      new RegExp(`^GET http://${proxy.host}/v2/ci/canary/blobs/${layer}: content has digest sha256:[0-9a-f]{64}, expected ${layer}$`),
    );
  });

  test("is bad_response when a layer's body stops before its end", async () => {
    proxy.setRules([{ path: LAYER_PATH(), action: { kind: "truncate", keepBytes: 1000 } }]);
    const result = await pull(`${proxy.host}/ci/canary:latest`);
    expect(result.reason).toBe("bad_response");
    expect(result.error).toBe(
      `GET http://${proxy.host}/v2/ci/canary/blobs/${manifest.layers[0]?.digest}: response ended after 1000 of ${manifest.layers[0]?.size} bytes`,
    );
  });

  test("is digest_mismatch when the manifest does not match its Docker-Content-Digest", async () => {
    proxy.setRules([{ path: MANIFEST_PATH, action: { kind: "corrupt" } }]);
    const result = await pull(`${proxy.host}/ci/canary:latest`);
    expect(result.reason).toBe("digest_mismatch");
    expect(result.error).toMatch(
      new RegExp(
        `^GET http://${proxy.host}/v2/ci/canary/manifests/latest: manifest has digest sha256:[0-9a-f]{64}, Docker-Content-Digest says ${manifest.digest}$`,
      ),
    );
  });

  test("is digest_mismatch when a manifest pulled by digest is another one", async () => {
    const other = JSON.stringify({ ...JSON.parse(manifest.raw), layers: [] });
    proxy.setRules([{ path: MANIFEST_PATH, action: { kind: "replace", body: other, contentType: DOCKER_MANIFEST } }]);
    const result = await pull(`${proxy.host}/ci/canary@${manifest.digest}`);
    expect(result.reason).toBe("digest_mismatch");
    const actual = `sha256:${createHash("sha256").update(other).digest("hex")}`;
    expect(result.error).toBe(
      `GET http://${proxy.host}/v2/ci/canary/manifests/${manifest.digest}: manifest has digest ${actual}, expected ${manifest.digest}`,
    );
  });

  test("pulls by a pinned digest that matches", async () => {
    const result = await pull(`${proxy.host}/ci/canary@${manifest.digest}`);
    expect(result.success).toBe(true);
    expectLogLine(result.log, { includes: `manifest ${DOCKER_MANIFEST} ${manifest.digest}` });
  });

  test("follows a blob redirect to another host without sending it the registry's Authorization", async () => {
    proxy.setRules([{ path: LAYER_PATH(), action: { kind: "redirect" } }]);
    const result = await pull(`${proxy.host}/ci/canary:latest`);
    expect(result.success).toBe(true);
    expect(proxy.requests.find((r) => LAYER_PATH().test(r.path))?.authorization).toBe(true);
    expect(proxy.storageRequests).toEqual([{ method: "GET", path: "/storage/1", authorization: false }]);
    const layer = manifest.layers[0]?.digest ?? "";
    expectLogLine(result.log, { endsWith: `GET http://${proxy.host}/v2/ci/canary/blobs/${layer} -> 307` });
    expectLogLine(result.log, /GET http:\/\/localhost:\d+\/storage\/1 -> 200$/);
  });

  test("follows a manifest redirect chain of 4 hops, each hop's socket back in the pool", async () => {
    proxy.setRules([{ path: MANIFEST_PATH, action: { kind: "hops", hops: 4 } }]);
    const result = await pull(`${proxy.host}/ci/canary:latest`, { timeoutMs: 5000 });
    expect(result.success).toBe(true);
    const hops = proxy.requests.filter((r) => MANIFEST_PATH.test(r.path)).map((r) => r.path.replace(/^.*manifests\//, ""));
    expect(hops).toEqual(["latest", "latest?hop=1", "latest?hop=2", "latest?hop=3", "latest?hop=4"]);
    expect(result.durationSeconds).toBeLessThan(3);
  });

  test("is bad_response, long before the deadline, for a manifest redirect loop", async () => {
    proxy.setRules([{ path: MANIFEST_PATH, action: { kind: "hops", hops: Number.POSITIVE_INFINITY } }]);
    const result = await pull(`${proxy.host}/ci/canary:latest`, { timeoutMs: 5000 });
    expect(result.reason).toBe("bad_response");
    expect(result.error).toBe(`GET http://${proxy.host}/v2/ci/canary/manifests/latest: more than 5 redirects`);
    expect(proxy.requests.filter((r) => MANIFEST_PATH.test(r.path))).toHaveLength(6);
    expect(result.durationSeconds).toBeLessThan(3);
  });

  test("resolves an OCI index to its linux/amd64 entry", async () => {
    proxy.setRules([
      { path: /^\/v2\/ci\/canary\/manifests\/multi$/, action: { kind: "replace", body: indexBody(), contentType: OCI_INDEX } },
    ]);
    const result = await pull(`${proxy.host}/ci/canary:multi`);
    expect(result.success).toBe(true);
    expectLogLine(result.log, { endsWith: `platform linux/amd64 -> ${manifest.digest}` });
    expect(proxy.requests.map((r) => r.path)).toContain(`/v2/ci/canary/manifests/${manifest.digest}`);
  });

  test("resolves an index to the configured platform with its variant", async () => {
    proxy.setRules([
      { path: /^\/v2\/ci\/canary\/manifests\/multi$/, action: { kind: "replace", body: indexBody(), contentType: OCI_INDEX } },
    ]);
    const result = await pull(`${proxy.host}/ci/canary:multi`, { platform: "linux/arm64/v8" });
    // The arm64/v8 entry names a manifest the registry does not hold: asking for it proves the choice.
    expect(result.reason).toBe("not_found");
    expectLogLine(result.log, { endsWith: `platform linux/arm64/v8 -> ${ARM64_V8}` });
  });

  test("is not_found when the index has no entry for the platform", async () => {
    proxy.setRules([
      { path: /^\/v2\/ci\/canary\/manifests\/multi$/, action: { kind: "replace", body: indexBody(), contentType: OCI_INDEX } },
    ]);
    const result = await pull(`${proxy.host}/ci/canary:multi`, { platform: "windows/amd64" });
    expect(result.reason).toBe("not_found");
    expect(result.error).toBe(
      `GET http://${proxy.host}/v2/ci/canary/manifests/multi: no manifest for windows/amd64 in the index (has: linux/arm64/v7, linux/arm64/v8, linux/amd64)`,
    );
  });

  test("is timeout within the deadline when a layer's body stalls", async () => {
    proxy.setRules([{ path: LAYER_PATH(), action: { kind: "stall", keepBytes: 1000 } }]);
    const result = await pull(`${proxy.host}/ci/canary:latest`, { timeoutMs: 700 });
    expect(result.reason).toBe("timeout");
    const layer = manifest.layers[0]?.digest ?? "";
    expect(result.error).toMatch(
      new RegExp(
        `^timed out after \\d+ms \\(GET http://${proxy.host}/v2/ci/canary/blobs/${layer}: stopped after 1000 bytes of the body\\)$`,
      ),
    );
    expect(result.durationSeconds).toBeGreaterThanOrEqual(0.69);
    expect(result.durationSeconds).toBeLessThan(1.2);
  });
});

const ARM64_V7 = `sha256:${"7".repeat(64)}`;
const ARM64_V8 = `sha256:${"8".repeat(64)}`;

/** An index listing arm64 variants before the real image as linux/amd64. */
function indexBody(): string {
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [
      { mediaType: DOCKER_MANIFEST, digest: ARM64_V7, size: 100, platform: { os: "linux", architecture: "arm64", variant: "v7" } },
      { mediaType: DOCKER_MANIFEST, digest: ARM64_V8, size: 100, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
      { mediaType: DOCKER_MANIFEST, digest: manifest.digest, size: manifest.raw.length, platform: { os: "linux", architecture: "amd64" } },
    ],
  });
}

describe("a registry that is not there", () => {
  test("is connection when nothing listens on its port", async () => {
    const result = await withNeighbour(runProbe("pull", probeContext({ target: "127.0.0.1:1/ci/canary:latest" }), directPull));
    expect(result.reason).toBe("connection");
    expect(result.error).toBe("GET http://127.0.0.1:1/v2/: connect ECONNREFUSED 127.0.0.1:1");
  });
});

describe("a registry that accepts connections and never answers", () => {
  test("times out a login within the probe's deadline", async () => {
    const silent = await startSilentServer();
    try {
      const result = await login(silent.host, 500);
      expect(result.reason).toBe("timeout");
      expect(result.error).toMatch(new RegExp(`^timed out after \\d+ms \\(GET http://${silent.host}/v2/: The operation was aborted\\)$`));
      expect(result.durationSeconds).toBeGreaterThanOrEqual(0.49);
      expect(result.durationSeconds).toBeLessThan(1.0);
    } finally {
      await silent.close();
    }
  });
});

describe("more faults: slow, misshapen, endless, token realms, challenges", () => {
  test("succeeds when a layer's body is slow but ends within the deadline", async () => {
    proxy.setRules([{ path: LAYER_PATH(), action: { kind: "slow", chunks: 6, overMs: 1200 } }]);
    const result = await pull(`${proxy.host}/ci/canary:latest`, { timeoutMs: 5000 });
    expect(result.success).toBe(true);
    expect(result.bytes).toBe(manifest.config.size + manifest.layers.reduce((s, l) => s + l.size, 0));
    expect(result.durationSeconds).toBeGreaterThanOrEqual(1.1);
  });

  test("is bad_response for a manifest that is JSON of the wrong shape", async () => {
    const body = JSON.stringify({ schemaVersion: 2, mediaType: DOCKER_MANIFEST, config: manifest.config, layers: "all of them" });
    proxy.setRules([{ path: MANIFEST_PATH, action: { kind: "replace", body, contentType: DOCKER_MANIFEST } }]);
    const result = await pull(`${proxy.host}/ci/canary:latest`);
    expect(result.reason).toBe("bad_response");
    expect(result.error).toBe(WRONG_SHAPE(proxy.host));
  });

  test("is bad_response for an endless chunked manifest, of which little more than the 4 MiB limit is read", async () => {
    proxy.stats.sent = 0;
    proxy.setRules([{ path: MANIFEST_PATH, action: { kind: "endless", bytes: 1024 * 1024 * 1024, contentType: DOCKER_MANIFEST } }]);
    const result = await pull(`${proxy.host}/ci/canary:latest`);
    expect(result.reason).toBe("bad_response");
    expect(result.error).toBe(`GET http://${proxy.host}/v2/ci/canary/manifests/latest: response is over the 4194304-byte limit`);
    // Of the 1 GiB offered, the prober took the limit and socket buffers' worth, then hung up.
    expect(proxy.stats.sent).toBeGreaterThan(4 * 1024 * 1024);
    expect(proxy.stats.sent).toBeLessThan(32 * 1024 * 1024);
  });

  test("is timeout within the deadline when the token realm accepts and never answers", async () => {
    const silent = await startSilentServer();
    try {
      const challenge = `Bearer realm="http://${silent.host}/jwt/auth",service="container_registry"`;
      proxy.setRules([
        { path: /^\/v2\/$/, action: { kind: "respond", status: 401, body: "{}", headers: { "www-authenticate": challenge } } },
      ]);
      const result = await login(proxy.host, 700);
      expect(result.reason).toBe("timeout");
      expect(result.error).toMatch(
        new RegExp(`^timed out after \\d+ms \\(GET http://${silent.host}/jwt/auth: The operation was aborted\\)$`),
      );
      expect(result.durationSeconds).toBeLessThan(1.7);
    } finally {
      await silent.close();
    }
  });

  test("is bad_response when the token realm answers something that is not JSON", async () => {
    const challenge = `Bearer realm="http://${proxy.host}/garbage-token",service="container_registry"`;
    proxy.setRules([
      { path: /^\/v2\/$/, action: { kind: "respond", status: 401, body: "{}", headers: { "www-authenticate": challenge } } },
      {
        path: /^\/garbage-token/,
        action: { kind: "respond", status: 200, body: "<html>Sign in</html>", headers: { "content-type": "text/html" } },
      },
    ]);
    const result = await login(proxy.host);
    expect(result.reason).toBe("bad_response");
    expect(result.error).toBe(`GET http://${proxy.host}/garbage-token: token response is not JSON`);
  });

  test("is bad_response for a WWW-Authenticate header that does not parse", async () => {
    proxy.setRules([
      {
        path: /^\/v2\/$/,
        action: { kind: "respond", status: 401, body: "{}", headers: { "www-authenticate": 'Bearer realm="http://unterminated' } },
      },
    ]);
    const result = await login(proxy.host);
    expect(result.reason).toBe("bad_response");
    expect(result.error).toBe(GARBAGE_CHALLENGE(proxy.host));
  });
});

// TLS failures end in the handshake: a stand-in HTTPS server is all a case needs.
describe("a registry over TLS whose certificate is not acceptable", () => {
  let dir: string;
  let ca: string;
  const servers: HttpsServer[] = [];

  beforeAll(() => {
    dir = tempDir("faults-tls");
    ca = makeTlsMaterial(join(dir, "tls")).server.ca;
  });
  afterAll(async () => {
    for (const s of servers) await new Promise((r) => s.close(r));
  });

  async function serve(cert: { cert: string; key: string }): Promise<string> {
    const server = createHttpsServer({ cert: readFileSync(cert.cert), key: readFileSync(cert.key) }, (_req, res) =>
      res.writeHead(200).end("{}"),
    );
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return `127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  function tlsLogin(host: string, caPem: string) {
    const config = testConfig({ registries: { [host]: { ca: caPem, insecure: false } } });
    return withNeighbour(
      runProbe("login", probeContext({ target: host, config, credential: passwordCredential(host, "alice", password) }), directLogin),
    );
  }

  test("is tls for a certificate from a CA the registry's ca_file does not hold", async () => {
    const other = makeTlsMaterial(join(dir, "other"));
    const host = await serve(signed(join(dir, "tls"), "ok", "subjectAltName=IP:127.0.0.1"));
    const result = await tlsLogin(host, readFileSync(other.server.ca, "utf8"));
    expect(result.reason).toBe("tls");
    expect(result.error).toBe(`GET https://${host}/v2/: unable to verify the first certificate`);
  });

  test("is tls for an expired certificate", async () => {
    const host = await serve(
      signed(join(dir, "tls"), "expired", "subjectAltName=IP:127.0.0.1", { start: "20200101000000Z", end: "20200102000000Z" }),
    );
    const result = await tlsLogin(host, readFileSync(ca, "utf8"));
    expect(result.reason).toBe("tls");
    expect(result.error).toBe(`GET https://${host}/v2/: certificate has expired`);
  });

  test("is tls for a certificate of another host", async () => {
    const host = await serve(signed(join(dir, "tls"), "elsewhere", "subjectAltName=DNS:registry.elsewhere.example"));
    const result = await tlsLogin(host, readFileSync(ca, "utf8"));
    expect(result.reason).toBe("tls");
    expect(result.error).toBe(
      `GET https://${host}/v2/: Hostname/IP does not match certificate's altnames: IP: 127.0.0.1 is not in the cert's list:`,
    );
  });
});

/** A server certificate signed by the CA makeTlsMaterial() left in `tlsDir`; `dates` backdates it (openssl ca can, x509 -req cannot). */
function signed(tlsDir: string, name: string, ext: string, dates?: { start: string; end: string }): { cert: string; key: string } {
  const ssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "ignore" });
  const key = join(tlsDir, `${name}-key.pem`);
  const csr = join(tlsDir, `${name}.csr`);
  const cert = join(tlsDir, `${name}.pem`);
  const extFile = join(tlsDir, `${name}.ext`);
  writeFileSync(extFile, `${ext}\nextendedKeyUsage=serverAuth\n`);
  ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", `/CN=${name}`);
  const caArgs = ["-CA", join(tlsDir, "ca.pem"), "-CAkey", join(tlsDir, "ca-key.pem")];
  if (!dates) {
    ssl("x509", "-req", "-in", csr, ...caArgs, "-CAcreateserial", "-days", "2", "-out", cert, "-extfile", extFile);
    return { cert, key };
  }
  const db = join(tlsDir, `${name}-db`);
  execFileSync("mkdir", ["-p", db]);
  writeFileSync(join(db, "index.txt"), "");
  writeFileSync(join(db, "serial"), "1000\n");
  const cnf = join(db, "ca.cnf");
  const policy = `[ca]\ndefault_ca=d\n[d]\ndatabase=${join(db, "index.txt")}\nnew_certs_dir=${db}\nserial=${join(db, "serial")}`;
  writeFileSync(cnf, `${policy}\ndefault_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n`);
  const ca = ["-cert", join(tlsDir, "ca.pem"), "-keyfile", join(tlsDir, "ca-key.pem")];
  ssl(
    "ca",
    "-batch",
    "-config",
    cnf,
    ...ca,
    "-in",
    csr,
    "-out",
    cert,
    "-startdate",
    dates.start,
    "-enddate",
    dates.end,
    "-extfile",
    extFile,
  );
  return { cert, key };
}

const WRONG_SHAPE = (host: string) =>
  `GET http://${host}/v2/ci/canary/manifests/latest: invalid ${DOCKER_MANIFEST} at layers: Invalid input: expected array, received string`;
const GARBAGE_CHALLENGE = (host: string) =>
  `GET http://${host}/v2/: unparseable WWW-Authenticate header at character 13: "Bearer realm=\\"http://unterminated"`;
