import { createHash } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, test } from "vitest";
import { directLogin, directPull } from "../../../src/probes/direct.js";
import { runProbe } from "../../../src/probes/run.js";
import { run } from "../../services/procs.js";
import { type FaultProxy, startFaultProxy, startSilentServer } from "../../helpers/fault-proxy.js";
import { passwordCredential, probeContext, testConfig } from "../../helpers/registry.js";

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

function pull(target: string, opts: { platform?: string; timeoutMs?: number } = {}) {
  const config = testConfig({ ...(opts.platform ? { platform: opts.platform } : {}), ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}) });
  return runProbe("pull", probeContext({ target, config, credential: passwordCredential(proxy.host, "alice", password) }), directPull);
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
    expect(result.error).toBe(`GET http://${proxy.host}/v2/ci/canary/manifests/latest: HTTP 403: requested access to the resource is denied`);
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
    const result = await runProbe("login", probeContext({ target: proxy.host, credential: passwordCredential(proxy.host, "alice", password) }), directLogin);
    expect(result.reason).toBe("server_error");
    expect(result.error).toBe(`GET http://${proxy.host}/v2/: HTTP 500`);
  });

  test("is bad_response for a manifest cut off before its Content-Length", async () => {
    proxy.setRules([{ path: MANIFEST_PATH, action: { kind: "truncate", keepBytes: 100 } }]);
    const result = await pull(`${proxy.host}/ci/canary:latest`);
    expect(result.reason).toBe("bad_response");
    expect(result.error).toBe(`GET http://${proxy.host}/v2/ci/canary/manifests/latest: response ended after 100 of ${manifest.raw.length} bytes`);
  });

  test("is bad_response for a manifest over 4 MiB, announced by Content-Length", async () => {
    const body = Buffer.alloc(4 * 1024 * 1024 + 1, 0x20);
    proxy.setRules([{ path: MANIFEST_PATH, action: { kind: "respond", status: 200, body, headers: { "content-type": DOCKER_MANIFEST } } }]);
    const result = await pull(`${proxy.host}/ci/canary:latest`);
    expect(result.reason).toBe("bad_response");
    expect(result.error).toBe(`GET http://${proxy.host}/v2/ci/canary/manifests/latest: response of 4194305 bytes is over the 4194304-byte limit`);
  });

  test("is bad_response for a chunked manifest that grows over 4 MiB", async () => {
    const body = Buffer.alloc(5 * 1024 * 1024, 0x20);
    proxy.setRules([{ path: MANIFEST_PATH, action: { kind: "respond", status: 200, body, chunked: true, headers: { "content-type": DOCKER_MANIFEST } } }]);
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
    expect(result.error).toMatch(new RegExp(`^GET http://${proxy.host}/v2/ci/canary/blobs/${layer}: content has digest sha256:[0-9a-f]{64}, expected ${layer}$`));
  });

  test("is bad_response when a layer's body stops before its end", async () => {
    proxy.setRules([{ path: LAYER_PATH(), action: { kind: "truncate", keepBytes: 1000 } }]);
    const result = await pull(`${proxy.host}/ci/canary:latest`);
    expect(result.reason).toBe("bad_response");
    expect(result.error).toBe(`GET http://${proxy.host}/v2/ci/canary/blobs/${manifest.layers[0]?.digest}: response ended after 1000 of ${manifest.layers[0]?.size} bytes`);
  });

  test("is digest_mismatch when the manifest does not match its Docker-Content-Digest", async () => {
    proxy.setRules([{ path: MANIFEST_PATH, action: { kind: "corrupt" } }]);
    const result = await pull(`${proxy.host}/ci/canary:latest`);
    expect(result.reason).toBe("digest_mismatch");
    expect(result.error).toMatch(
      new RegExp(`^GET http://${proxy.host}/v2/ci/canary/manifests/latest: manifest has digest sha256:[0-9a-f]{64}, Docker-Content-Digest says ${manifest.digest}$`),
    );
  });

  test("is digest_mismatch when a manifest pulled by digest is another one", async () => {
    const other = JSON.stringify({ ...JSON.parse(manifest.raw), layers: [] });
    proxy.setRules([{ path: MANIFEST_PATH, action: { kind: "replace", body: other, contentType: DOCKER_MANIFEST } }]);
    const result = await pull(`${proxy.host}/ci/canary@${manifest.digest}`);
    expect(result.reason).toBe("digest_mismatch");
    const actual = `sha256:${createHash("sha256").update(other).digest("hex")}`;
    expect(result.error).toBe(`GET http://${proxy.host}/v2/ci/canary/manifests/${manifest.digest}: manifest has digest ${actual}, expected ${manifest.digest}`);
  });

  test("pulls by a pinned digest that matches", async () => {
    const result = await pull(`${proxy.host}/ci/canary@${manifest.digest}`);
    expect(result.success).toBe(true);
    expect(result.log.some((l) => l.includes(`manifest ${DOCKER_MANIFEST} ${manifest.digest}`))).toBe(true);
  });

  test("follows a blob redirect to another host without sending it the registry's Authorization", async () => {
    proxy.setRules([{ path: LAYER_PATH(), action: { kind: "redirect" } }]);
    const result = await pull(`${proxy.host}/ci/canary:latest`);
    expect(result.success).toBe(true);
    expect(proxy.requests.find((r) => LAYER_PATH().test(r.path))?.authorization).toBe(true);
    expect(proxy.storageRequests).toEqual([{ method: "GET", path: "/storage/1", authorization: false }]);
    const layer = manifest.layers[0]?.digest ?? "";
    expect(result.log.some((l) => l.endsWith(`GET http://${proxy.host}/v2/ci/canary/blobs/${layer} -> 307`))).toBe(true);
    expect(result.log.some((l) => /GET http:\/\/localhost:\d+\/storage\/1 -> 200$/.test(l))).toBe(true);
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
    proxy.setRules([{ path: /^\/v2\/ci\/canary\/manifests\/multi$/, action: { kind: "replace", body: indexBody(), contentType: OCI_INDEX } }]);
    const result = await pull(`${proxy.host}/ci/canary:multi`);
    expect(result.success).toBe(true);
    expect(result.log.some((l) => l.endsWith(`platform linux/amd64 -> ${manifest.digest}`))).toBe(true);
    expect(proxy.requests.map((r) => r.path)).toContain(`/v2/ci/canary/manifests/${manifest.digest}`);
  });

  test("resolves an index to the configured platform with its variant", async () => {
    proxy.setRules([{ path: /^\/v2\/ci\/canary\/manifests\/multi$/, action: { kind: "replace", body: indexBody(), contentType: OCI_INDEX } }]);
    const result = await pull(`${proxy.host}/ci/canary:multi`, { platform: "linux/arm64/v8" });
    // The arm64/v8 entry names a manifest the registry does not hold: asking for it proves the choice.
    expect(result.reason).toBe("not_found");
    expect(result.log.some((l) => l.endsWith(`platform linux/arm64/v8 -> ${ARM64_V8}`))).toBe(true);
  });

  test("is not_found when the index has no entry for the platform", async () => {
    proxy.setRules([{ path: /^\/v2\/ci\/canary\/manifests\/multi$/, action: { kind: "replace", body: indexBody(), contentType: OCI_INDEX } }]);
    const result = await pull(`${proxy.host}/ci/canary:multi`, { platform: "windows/amd64" });
    expect(result.reason).toBe("not_found");
    expect(result.error).toBe(`GET http://${proxy.host}/v2/ci/canary/manifests/multi: no manifest for windows/amd64 in the index (has: linux/arm64/v7, linux/arm64/v8, linux/amd64)`);
  });

  test("is timeout within the deadline when a layer's body stalls", async () => {
    proxy.setRules([{ path: LAYER_PATH(), action: { kind: "stall", keepBytes: 1000 } }]);
    const result = await pull(`${proxy.host}/ci/canary:latest`, { timeoutMs: 700 });
    expect(result.reason).toBe("timeout");
    const layer = manifest.layers[0]?.digest ?? "";
    expect(result.error).toMatch(new RegExp(`^timed out after \\d+ms \\(GET http://${proxy.host}/v2/ci/canary/blobs/${layer}: stopped after 1000 bytes of the body\\)$`));
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
    const result = await runProbe("pull", probeContext({ target: "127.0.0.1:1/ci/canary:latest" }), directPull);
    expect(result.reason).toBe("connection");
    expect(result.error).toBe("GET http://127.0.0.1:1/v2/: connect ECONNREFUSED 127.0.0.1:1");
  });
});

describe("a registry that accepts connections and never answers", () => {
  test("times out a login within the probe's deadline", async () => {
    const silent = await startSilentServer();
    try {
      const ctx = probeContext({ target: silent.host, credential: passwordCredential(silent.host, "alice", password), config: testConfig({ timeoutMs: 500 }) });
      const result = await runProbe("login", ctx, directLogin);
      expect(result.reason).toBe("timeout");
      expect(result.error).toMatch(new RegExp(`^timed out after \\d+ms \\(GET http://${silent.host}/v2/: The operation was aborted\\)$`));
      expect(result.durationSeconds).toBeGreaterThanOrEqual(0.49);
      expect(result.durationSeconds).toBeLessThan(1.0);
    } finally {
      await silent.close();
    }
  });
});
