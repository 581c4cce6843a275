import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { parseBasic } from "../../../src/http/basic-auth.js";
import { parseWebConfig, readWebConfig } from "../../../src/http/web-config.js";

const FILE = "/etc/ci-prober/web.yml";
const HASH = "$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG";

describe("web config files are decoded as strictly as exporter-toolkit decodes them", () => {
  const bad: [string, string, string][] = [
    ["an unknown top-level key", "basic_auth_user:\n  a: x\n", 'unknown key "basic_auth_user"'],
    [
      "an unknown key in tls_server_config",
      "tls_server_config:\n  cert_file: a\n  key_file: b\n  certfile: c\n",
      'tls_server_config: unknown key "certfile"',
    ],
    [
      "a password in place of a bcrypt hash",
      "basic_auth_users:\n  alice: hunter22\n",
      "basic_auth_users.alice: expected a bcrypt hash (htpasswd -nBC 10 \"\" | tr -d ':\\n')",
    ],
    ["a certificate without its key", "tls_server_config:\n  cert_file: a.pem\n", "tls_server_config: missing one of key or key_file"],
    ["a key without its certificate", "tls_server_config:\n  key_file: a.pem\n", "tls_server_config: missing one of cert or cert_file"],
    [
      "an unknown client_auth_type",
      "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Always\n",
      "tls_server_config.client_auth_type: expected one of NoClientCert, RequestClientCert, RequireAnyClientCert, RequireClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert",
    ],
    [
      "a client CA without a client auth policy",
      "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: ca.pem\n",
      "tls_server_config: client_ca_file is set but client_auth_type is NoClientCert (use RequireAndVerifyClientCert)",
    ],
    [
      "an unknown TLS version",
      "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS1.2\n",
      "tls_server_config.min_version: expected one of TLS10, TLS11, TLS12, TLS13",
    ],
    [
      "a cipher suite Go does not know",
      "tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [ECDHE-RSA-AES128-GCM-SHA256]\n",
      "tls_server_config.cipher_suites[0]: expected a cipher suite of Go's tls.CipherSuites()",
    ],
    [
      "a header that cannot be configured",
      "http_server_config:\n  headers:\n    Server: ci\n",
      'http_server_config.headers: HTTP header "Server" can not be configured',
    ],
    [
      "a header in the wrong case",
      "http_server_config:\n  headers:\n    x-frame-options: deny\n",
      'http_server_config.headers: HTTP header "x-frame-options" can not be configured',
    ],
    [
      "a header value outside its list",
      "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
      'http_server_config.headers.X-Frame-Options: expected one of deny, sameorigin, got "allow"',
    ],
    ["a duplicate key", `basic_auth_users:\n  alice: ${HASH}\n  alice: ${HASH}\n`, "invalid YAML: Map keys must be unique"],
    ["a bad rate_limit interval", "rate_limit:\n  interval: soon\n  burst: 2\n", "rate_limit.interval: expected a duration like 1s"],
  ];
  test.each(bad)("%s is an error naming the file and the key", (_what, text, message) => {
    expect(() => parseWebConfig(FILE, text)).toThrow(`web config ${FILE}: ${message}`);
  });

  test("no error message quotes a hash or a password from the file", () => {
    for (const text of [
      `basic_auth_users:\n  alice: ${HASH.slice(0, 40)}\n`,
      `basic_auth_users:\n  alice: ${HASH}\n bob: [\n`,
      "basic_auth_users:\n  alice: pw-9f8e7d6c\n",
    ]) {
      let message = "";
      try {
        parseWebConfig(FILE, text);
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toMatch(/^web config \/etc\/ci-prober\/web\.yml: /);
      expect(message).not.toContain(HASH.slice(10, 40));
      expect(message).not.toContain("pw-9f8e7d6c");
    }
  });

  test("an empty file, and empty sections, mean plain HTTP without auth", () => {
    for (const text of [
      "",
      "tls_server_config:\nbasic_auth_users:\nhttp_server_config:\n",
      "tls_server_config:\n  client_auth_type: ''\n",
    ]) {
      expect(parseWebConfig(FILE, text)).toEqual({ users: new Map(), headers: {} });
    }
  });

  test("TLS settings take exporter-toolkit's defaults and resolve paths against the file's directory", () => {
    const config = parseWebConfig(
      FILE,
      `tls_server_config:\n  cert_file: tls/server.crt\n  key_file: /abs/server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\nbasic_auth_users:\n  prometheus: ${HASH}\n`,
    );
    expect(config.tls).toEqual({
      certFile: "/etc/ci-prober/tls/server.crt",
      keyFile: "/abs/server.key",
      clientCaFile: "/etc/ci-prober/ca.pem",
      clientAuth: "RequireAndVerifyClientCert",
      minVersion: "TLSv1.2",
      maxVersion: "TLSv1.3",
      honorCipherOrder: true,
    });
    expect([...config.users]).toEqual([["prometheus", HASH]]);
  });

  test("cipher suites map to OpenSSL names with TLS 1.3 kept, curves to OpenSSL groups, RequireClientCert to RequireAnyClientCert", () => {
    const config = parseWebConfig(
      FILE,
      [
        "tls_server_config:",
        "  cert: inline-cert",
        "  key: inline-key",
        "  client_auth_type: RequireClientCert",
        "  min_version: TLS13",
        "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256]",
        "  curve_preferences: [X25519, CurveP256]",
        "  prefer_server_cipher_suites: false",
        "  client_allowed_sans: [prometheus.example.jp]",
        "",
      ].join("\n"),
    );
    expect(config.tls).toEqual({
      cert: "inline-cert",
      key: "inline-key",
      clientAuth: "RequireAnyClientCert",
      allowedSans: ["prometheus.example.jp"],
      minVersion: "TLSv1.3",
      maxVersion: "TLSv1.3",
      ciphers:
        "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305",
      ecdhCurve: "X25519:P-256",
      honorCipherOrder: false,
    });
  });

  test("headers and rate_limit are kept as written", () => {
    const config = parseWebConfig(
      FILE,
      "http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: sameorigin\n    Content-Security-Policy: default-src 'self'\nrate_limit:\n  interval: 1s\n  burst: 20\n",
    );
    expect(config).toEqual({
      users: new Map(),
      headers: { "X-Frame-Options": "sameorigin", "Content-Security-Policy": "default-src 'self'" },
      rateLimit: { intervalMs: 1000, burst: 20 },
    });
    expect(parseWebConfig(FILE, "rate_limit:\n  interval: 0s\n  burst: 3\n").rateLimit).toBeUndefined();
  });

  test("a missing file is an error naming it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "web-config-"));
    await expect(readWebConfig(join(dir, "nope.yml"))).rejects.toThrow(`web config ${join(dir, "nope.yml")}: no such file`);
    writeFileSync(join(dir, "web.yml"), `basic_auth_users:\n  alice: ${HASH}\n`);
    expect((await readWebConfig(join(dir, "web.yml"))).users.get("alice")).toBe(HASH);
  });
});

describe("the Authorization header is read as Go's Request.BasicAuth reads it", () => {
  test.each([
    ["Basic YWxpY2U6cHc6d2l0aDpjb2xvbnM=", { user: "alice", password: "pw:with:colons" }],
    ["basic YWxpY2U6", { user: "alice", password: "" }],
    ["Bearer YWxpY2U6cHc=", undefined],
    ["Basic YWxpY2U", undefined],
    ["Basic YWxpY2U6cHc", undefined],
    ["Basic bm9jb2xvbg==", undefined],
    [undefined, undefined],
  ])("%s", (header, expected) => {
    expect(parseBasic(header)).toEqual(expected);
  });
});
