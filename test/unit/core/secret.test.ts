import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfigFile } from "../../../src/config/read.js";
import { createLogger } from "../../../src/log.js";
import { plan } from "../../../src/plan.js";
import { directLogin } from "../../../src/probes/direct.js";
import { runProbe } from "../../../src/probes/run.js";
import { ProbeError } from "../../../src/reasons.js";
import { globalSecretCount, scrub, Secret } from "../../../src/secret.js";
import { tempDir, writeDockerConfig } from "../../helpers/fixtures.js";
import { passwordCredential, probeContext } from "../../helpers/registry.js";

describe("probe-scoped secrets", () => {
  it("100,000 probes each made a token of their own: all forgotten, the global set did not grow", async () => {
    const before = globalSecretCount();
    const last: string[] = [];
    for (let i = 0; i < 100_000; i++) {
      const token = `probe-token-${i.toString().padStart(6, "0")}-${"x".repeat(24)}`;
      const result = await runProbe("login", probeContext({ target: "127.0.0.1:1" }), async (ctx) => {
        ctx.log.step(`Bearer ${new Secret(token).reveal()}`);
      });
      if (i >= 99_998) last.push(token, result.log[0] ?? "");
    }
    expect(globalSecretCount()).toBe(before);
    // Inside its probe each token was scrubbed; after it, nothing knows it any more.
    expect(last[1]).toMatch(/^\+\d+ms Bearer \[redacted\]$/);
    expect(last[3]).toMatch(/^\+\d+ms Bearer \[redacted\]$/);
    expect(scrub(`Bearer ${last[2]}`)).toBe(`Bearer ${last[2]}`);
  }, 120_000);

  it("a probe's token never reaches its log lines, its probe log or its error, in any encoding", async () => {
    const lines: string[] = [];
    const logger = createLogger("debug", (line) => lines.push(line));
    const token = "eyJhbGciOiJFUzI1NiJ9.probe-only-token.c2lnbmF0dXJl";
    const result = await runProbe("login", { ...probeContext({ target: "127.0.0.1:1" }), logger }, async (ctx) => {
      const secret = new Secret(token);
      ctx.logger.info({ header: `Bearer ${secret.reveal()}`, b64: Buffer.from(token).toString("base64") }, "sending");
      ctx.log.step(`GET /v2/ with ${encodeURIComponent(secret.reveal())}`);
      throw new ProbeError("forbidden", `registry said: token ${secret.reveal()} is not allowed`);
    });
    expect(result.reason).toBe("forbidden");
    expect(result.error).toBe("registry said: token [redacted] is not allowed");
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] ?? "{}")).toMatchObject({ header: "Bearer [redacted]", b64: "[redacted]", msg: "sending" });
    expect(result.log.map((l) => l.replace(/^\+\d+ms /, ""))).toEqual([
      "GET /v2/ with [redacted]",
      "failed: forbidden: registry said: token [redacted] is not allowed",
    ]);
  });
});

// A registry whose token realm hands out a token and which then echoes that token in its 403:
// the token is made inside the probe (src/registry/token.ts) and must be scrubbed all the same.
describe("a registry that echoes the probe's Bearer token", () => {
  const token = "registry-issued-token-7f3a9c1e5b2d";
  let server: Server;
  let host = "";

  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url?.startsWith("/token")) {
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token }));
        return;
      }
      if (req.headers.authorization === undefined) {
        res
          .writeHead(401, { "www-authenticate": `Bearer realm="http://${host}/token",service="echo"`, "content-type": "application/json" })
          .end("{}");
        return;
      }
      const message = `access denied for ${req.headers.authorization}`;
      res.writeHead(403, { "content-type": "application/json" }).end(JSON.stringify({ errors: [{ code: "DENIED", message }] }));
    });
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((done) => server.close(() => done())));

  it("is forbidden, with the token redacted from the error, the probe log and every log line", async () => {
    const lines: string[] = [];
    const logger = createLogger("debug", (line) => lines.push(line));
    const ctx = { ...probeContext({ target: host, credential: passwordCredential(host, "alice", "alice-password-1") }), logger };
    const before = globalSecretCount();
    const result = await runProbe("login", ctx, directLogin);
    expect(result.reason).toBe("forbidden");
    expect(result.error).toBe(`GET http://${host}/v2/: HTTP 403: access denied for Bearer [redacted]`);
    expect([...result.log, ...lines].filter((l) => l.includes(token))).toEqual([]);
    expect(globalSecretCount()).toBe(before);
    expect(scrub(token)).toBe(token);
  });
});

describe("long-lived secrets", () => {
  it("ci-prober.yml's secrets live while their config is one of the two newest", () => {
    const dir = tempDir("secret-config");
    const load = (n: number) => {
      writeFileSync(join(dir, `token-${n}`), `glpat-config-token-${n}-abcdef\n`);
      writeFileSync(join(dir, `ci-prober-${n}.yml`), `gitlab:\n  url: http://127.0.0.1:1\n  token_file: token-${n}\n`);
      return loadConfigFile(join(dir, `ci-prober-${n}.yml`), {});
    };
    load(1);
    load(2);
    expect(scrub("glpat-config-token-1-abcdef glpat-config-token-2-abcdef")).toBe("[redacted] [redacted]");
    const size = globalSecretCount();
    load(3);
    expect(scrub("glpat-config-token-1-abcdef glpat-config-token-3-abcdef")).toBe("glpat-config-token-1-abcdef [redacted]");
    expect(globalSecretCount()).toBe(size);
  });

  it("a runner's credentials live while the plan that read them is one of the two newest", async () => {
    const dir = tempDir("secret-sources");
    const dockerConfig = join(dir, "docker");
    writeFileSync(
      join(dir, "ci-prober.yml"),
      `runners:\n  - name: runner-a\n    mode: direct\n    docker_config: ${dockerConfig}/config.json\n`,
    );
    const config = loadConfigFile(join(dir, "ci-prober.yml"), {});
    const planWith = async (password: string) => {
      writeDockerConfig(dockerConfig, { "127.0.0.1:1": { username: "alice", password } });
      const controller = new AbortController();
      return plan({
        config,
        logger: createLogger("silent"),
        sink: { probe: () => undefined, checks: () => undefined, cert: () => undefined },
        signal: controller.signal,
      });
    };
    const base = globalSecretCount();
    await planWith("rotated-password-01");
    const one = globalSecretCount() - base;
    await planWith("rotated-password-02");
    expect(scrub("rotated-password-01 rotated-password-02")).toBe("[redacted] [redacted]");
    for (let i = 3; i <= 20; i++) await planWith(`rotated-password-${String(i).padStart(2, "0")}`);
    expect(scrub("rotated-password-18 rotated-password-19 rotated-password-20")).toBe("rotated-password-18 [redacted] [redacted]");
    // Each plan holds one password and its auth value with their encodings; two plans are kept, never more.
    expect(one).toBeGreaterThan(0);
    expect(globalSecretCount() - base).toBe(2 * one);
  });
});
