import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { runProbe } from "../../../src/probes/run.js";
import { RegistryClient } from "../../../src/registry/client.js";
import { parseImageRef } from "../../../src/image.js";
import { classify } from "../../../src/probes/classify.js";
import { secureContextCount, trustFor } from "../../../src/registry/pool.js";
import { streamGet } from "../../../src/registry/rawget.js";
import { certificateExpiry } from "../../../src/registry/tls.js";
import { probeContext } from "../../helpers/registry.js";
import { expectLogLine } from "../../helpers/log.js";
import { selfSignedCert } from "../../services/tls.js";

const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";

/** A one-layer image served by the TLS registry below. */
const IMAGE = makeImage();

function makeImage(): { manifest: string; blobs: Map<string, Buffer>; bytes: number } {
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux" }));
  const layer = randomBytes(100_000);
  const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: DOCKER_MANIFEST,
    config: { mediaType: "application/vnd.docker.container.image.v1+json", digest: sha(config), size: config.length },
    layers: [{ mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", digest: sha(layer), size: layer.length }],
  });
  const blobs = new Map([
    [`/v2/tls/app/blobs/${sha(config)}`, config],
    [`/v2/tls/app/blobs/${sha(layer)}`, layer],
  ]);
  return { manifest, blobs, bytes: config.length + layer.length };
}

let dir: string;
let cert: string;
let server: Server;
let host: string;
let notAfter: number;

/** A registry over TLS on 127.0.0.1 with a self-signed certificate made by `openssl req -x509`; /v2/ needs no auth. */
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ci-prober-tls-"));
  selfSignedCert(dir, { name: "ci-prober-test-registry", days: 30 });
  cert = readFileSync(join(dir, "cert.pem"), "utf8");
  const end = execFileSync("openssl", ["x509", "-enddate", "-noout", "-in", join(dir, "cert.pem")])
    .toString()
    .trim();
  notAfter = Date.parse(end.replace(/^notAfter=/, ""));
  server = createServer({ key: readFileSync(join(dir, "key.pem")), cert }, (req, res) => {
    const blob = IMAGE.blobs.get(req.url ?? "");
    if (req.url === "/v2/") {
      res.writeHead(200, { "content-type": "application/json", "content-length": "2" }).end("{}");
    } else if (req.url === "/v2/tls/app/manifests/latest") {
      res.writeHead(200, { "content-type": DOCKER_MANIFEST, "content-length": String(IMAGE.manifest.length) }).end(IMAGE.manifest);
    } else if (blob) {
      // No Content-Length: Node sends the blob with chunked transfer coding, in several chunks.
      res.writeHead(200, { "content-type": "application/octet-stream" });
      for (let at = 0; at < blob.length; at += 10_000) res.write(blob.subarray(at, at + 10_000));
      res.end();
    } else {
      res.writeHead(404, { "content-type": "application/json", "content-length": "2" }).end("{}");
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

describe("certificateExpiry", () => {
  test("reads the notAfter of the registry's certificate, to the second openssl prints", async () => {
    const result = await certificateExpiry(host, { ca: cert, signal: AbortSignal.timeout(5_000), scheme: "https" });
    expect(result).toEqual({ notAfter });
    expect(notAfter).toBeGreaterThan(Date.now() + 29 * 86_400_000);
  });

  test("reads it without trusting the certificate: an untrusted one still reports its date", async () => {
    expect(await certificateExpiry(host, { signal: AbortSignal.timeout(5_000), scheme: "https" })).toEqual({ notAfter });
  });

  test("is undefined for a loopback registry spoken to over plain HTTP", async () => {
    expect(await certificateExpiry(host, { signal: AbortSignal.timeout(5_000) })).toBeUndefined();
  });

  test("is undefined for a registry marked insecure, without connecting to it", async () => {
    // A reserved name that never resolves: an attempt to connect would reject.
    expect(await certificateExpiry("registry.invalid:1", { insecure: true, signal: AbortSignal.timeout(5_000) })).toBeUndefined();
  });

  test("rejects with the connection error when nothing listens", async () => {
    await expect(certificateExpiry("127.0.0.1:1", { signal: AbortSignal.timeout(5_000), scheme: "https" })).rejects.toMatchObject({
      code: "ECONNREFUSED",
    });
  });
});

describe("the registry client over HTTPS", () => {
  function withClient(ca: string | undefined, body: (client: RegistryClient) => Promise<{ bytes?: number }>) {
    const ctx = probeContext({ target: host });
    return runProbe("login", ctx, async (c) => {
      const client = new RegistryClient({
        registry: host,
        credential: undefined,
        transport: { insecure: false, ...(ca !== undefined ? { ca } : {}) },
        signal: ctx.signal,
        log: (m) => ctx.log.step(m),
        scheme: "https",
      });
      try {
        const { bytes } = await body(client);
        if (bytes !== undefined) c.record.bytes(bytes);
      } finally {
        client.close();
      }
    });
  }

  function login(ca: string | undefined) {
    return withClient(ca, async (client) => {
      await client.login();
      return {};
    });
  }

  test("pulls and verifies an image over TLS, a blob in chunked transfer coding", async () => {
    const result = await withClient(cert, async (client) => ({
      bytes: (await client.pull(parseImageRef(`${host}/tls/app:latest`), { os: "linux", architecture: "amd64" })).bytes,
    }));
    expect(result.success).toBe(true);
    expect(result.bytes).toBe(IMAGE.bytes);
    expect(result.log.filter((l) => / blob sha256:[0-9a-f]{64} \d+ bytes verified$/.test(l))).toHaveLength(2);
  });

  test("the blob path's own TLS socket is tls without the CA, and names the endpoint", async () => {
    const url = new URL(`https://${host}${[...IMAGE.blobs.keys()][0]}`);
    const endpoint = `GET https://${host}${url.pathname}`;
    const err = await streamGet(url, endpoint, { signal: AbortSignal.timeout(5_000), onBody: () => undefined, userAgent: "test" }).catch(
      (e: unknown) => e,
    );
    expect(classify(err)).toBe("tls");
    expect((err as Error).message).toBe(`${endpoint}: self-signed certificate`);
  });

  test("every connection under one CA, of every probe, uses one secure context built once", async () => {
    const context = trustFor(cert).context;
    const count = secureContextCount();
    for (let i = 0; i < 3; i++) {
      const result = await withClient(cert, async (client) => ({
        bytes: (await client.pull(parseImageRef(`${host}/tls/app:latest`), { os: "linux", architecture: "amd64" })).bytes,
      }));
      expect(result.success).toBe(true);
    }
    expect(trustFor(cert).context).toBe(context);
    expect(secureContextCount()).toBe(count);
  });

  test("trusts the registry's configured CA", async () => {
    const result = await login(cert);
    expect(result.success).toBe(true);
    expectLogLine(result.log, { endsWith: `GET https://${host}/v2/ -> 200` });
  });

  test("is tls without it: a self-signed certificate is not trusted", async () => {
    const result = await login(undefined);
    expect(result.reason).toBe("tls");
    expect(result.error).toBe(`GET https://${host}/v2/: self-signed certificate`);
  });
});
