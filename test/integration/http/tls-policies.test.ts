import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify as stringifyYaml } from "yaml";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { listenGuarded, type Listening } from "../../../src/http/web-server.js";
import { silentLogger } from "../../../src/log.js";
import { tempDir } from "../../helpers/fixtures.js";
import { makeTlsMaterial } from "../../services/tls.js";

// The client-auth policies and TLS limits of exporter-toolkit, one server per policy, seen by curl.

const dir = tempDir("tls-policies");
const tls = makeTlsMaterial(join(dir, "a"));
const other = makeTlsMaterial(join(dir, "b"));
const servers: Listening[] = [];

function curl(url: string, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("curl", ["-sS", "--max-time", "10", "--cacert", tls.server.ca, ...args, url], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, out, err }));
  });
}

const withCert = (material: { client: string }) => ["--cert", join(material.client, "cert.pem"), "--key", join(material.client, "key.pem")];

async function serve(name: string, extra: Record<string, unknown>): Promise<string> {
  const file = join(dir, `${name}.yml`);
  writeFileSync(file, stringifyYaml({ tls_server_config: { cert_file: tls.server.cert, key_file: tls.server.key, ...extra } }));
  const l = await listenGuarded({
    host: "127.0.0.1",
    port: 0,
    webConfigFile: file,
    logger: silentLogger,
    handler: (_req, res) => res.end("ok\n"),
  });
  servers.push(l);
  return `https://${l.address}/`;
}

let urls: Record<string, string> = {};

beforeAll(async () => {
  urls = {
    none: await serve("none", {}),
    requireAny: await serve("require-any", { client_auth_type: "RequireAnyClientCert" }),
    ifGiven: await serve("if-given", { client_auth_type: "VerifyClientCertIfGiven", client_ca_file: tls.server.ca }),
    sans: await serve("sans", {
      client_auth_type: "RequireAndVerifyClientCert",
      client_ca_file: tls.server.ca,
      client_allowed_sans: ["prometheus.example.jp"],
    }),
    tls12: await serve("tls12", { max_version: "TLS12", cipher_suites: ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"] }),
    tls13: await serve("tls13", { min_version: "TLS13" }),
  };
});

afterAll(async () => {
  for (const s of servers) await s.close();
});

describe("client_auth_type and client_allowed_sans", () => {
  test("NoClientCert serves anyone who trusts the server", async () => {
    expect((await curl(urls.none ?? "", [])).out).toBe("ok\n");
  });

  test("RequireAnyClientCert takes any certificate, even one no CA here signed, and none is refused", async () => {
    expect((await curl(urls.requireAny ?? "", withCert(other))).out).toBe("ok\n");
    const none = await curl(urls.requireAny ?? "", []);
    expect([none.code === 0, none.out]).toEqual([false, ""]);
  });

  test("VerifyClientCertIfGiven serves without a certificate and with a good one, never with a foreign one", async () => {
    expect((await curl(urls.ifGiven ?? "", [])).out).toBe("ok\n");
    expect((await curl(urls.ifGiven ?? "", withCert(tls))).out).toBe("ok\n");
    const foreign = await curl(urls.ifGiven ?? "", withCert(other));
    expect([foreign.code === 0, foreign.out]).toEqual([false, ""]);
  });

  test("client_allowed_sans refuses a verified certificate whose SANs are not listed", async () => {
    const r = await curl(urls.sans ?? "", withCert(tls));
    expect([r.code === 0, r.out]).toEqual([false, ""]);
  });
});

describe("min_version, max_version and cipher_suites", () => {
  test("max_version TLS12 with one cipher suite negotiates exactly that suite and refuses the others", async () => {
    const ok = await curl(urls.tls12 ?? "", ["-w", "%{ssl_version}", "-o", "/dev/null", "-v"]);
    expect(ok.code).toBe(0);
    expect(ok.err).toContain("TLSv1.2 / ECDHE-RSA-AES128-GCM-SHA256");
    const other256 = await curl(urls.tls12 ?? "", ["--tls-max", "1.2", "--ciphers", "ECDHE-RSA-AES256-GCM-SHA384"]);
    expect([other256.code, other256.out]).toEqual([35, ""]);
  });

  test("min_version TLS13 refuses a TLS 1.2 client", async () => {
    expect((await curl(urls.tls13 ?? "", [])).out).toBe("ok\n");
    const old = await curl(urls.tls13 ?? "", ["--tls-max", "1.2"]);
    expect([old.code, old.out]).toEqual([35, ""]);
  });
});
