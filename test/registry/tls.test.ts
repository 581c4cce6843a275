import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { runProbe } from "../../src/probes/run.js";
import { RegistryClient } from "../../src/registry/client.js";
import { certificateExpiry } from "../../src/registry/tls.js";
import { probeContext } from "./helpers.js";

let dir: string;
let cert: string;
let server: Server;
let host: string;
let notAfter: number;

/** A registry over TLS on 127.0.0.1 with a self-signed certificate made by `openssl req -x509`; /v2/ needs no auth. */
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ci-prober-tls-"));
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", "/CN=ci-prober-test-registry",
    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
  ], { stdio: "ignore" });
  cert = readFileSync(join(dir, "cert.pem"), "utf8");
  const end = execFileSync("openssl", ["x509", "-enddate", "-noout", "-in", join(dir, "cert.pem")]).toString().trim();
  notAfter = Date.parse(end.replace(/^notAfter=/, ""));
  server = createServer({ key: readFileSync(join(dir, "key.pem")), cert }, (req, res) => {
    res.writeHead(req.url === "/v2/" ? 200 : 404, { "content-type": "application/json", "content-length": "2" }).end("{}");
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

  test("rejects with the connection error when nothing listens", async () => {
    await expect(certificateExpiry("127.0.0.1:1", { signal: AbortSignal.timeout(5_000), scheme: "https" })).rejects.toMatchObject({ code: "ECONNREFUSED" });
  });
});

describe("the registry client over HTTPS", () => {
  function login(ca: string | undefined) {
    const ctx = probeContext({ target: host });
    return runProbe("login", ctx, async () => {
      const client = new RegistryClient({
        registry: host,
        credential: undefined,
        transport: { insecure: false, ...(ca !== undefined ? { ca } : {}) },
        signal: ctx.signal,
        log: (m) => ctx.log.step(m),
        scheme: "https",
      });
      try {
        await client.login();
      } finally {
        client.close();
      }
      return {};
    });
  }

  test("trusts the registry's configured CA", async () => {
    const result = await login(cert);
    expect(result.success).toBe(true);
    expect(result.log.some((l) => l.endsWith(`GET https://${host}/v2/ -> 200`))).toBe(true);
  });

  test("is tls without it: a self-signed certificate is not trusted", async () => {
    const result = await login(undefined);
    expect(result.reason).toBe("tls");
    expect(result.error).toBe(`GET https://${host}/v2/: self-signed certificate`);
  });
});
