import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { z } from "zod";
import { oneLine } from "../../../src/errors.js";
import { GitlabClient, MAX_BODY_BYTES, rateLimitWaitMs } from "../../../src/gitlab/client.js";
import { pipelineListSchema } from "../../../src/gitlab/schema.js";
import { createLogger } from "../../../src/log.js";
import { classify } from "../../../src/probes/classify.js";
import { HttpStatusError } from "../../../src/reasons.js";
import { Secret } from "../../../src/secret.js";
import { ciState, type CiState } from "../../fake-gitlab/pipelines.js";
import { startFakeGitlab, type FakeGitlab } from "../../fake-gitlab/server.js";
import { testSigningKey } from "../../helpers/gitlab.js";

let fake: FakeGitlab;
let ci: CiState;
let token: string;
const PATH = "/projects/ci%2Fclient/pipelines";

beforeAll(async () => {
  fake = await startFakeGitlab(testSigningKey());
  ci = ciState(fake.state);
  ci.addProject({ path: "ci/client", jobs: [] });
  fake.state.addUser({ username: "client-user" });
  token = fake.state.issueApiToken("client-user");
});

afterAll(async () => {
  ci.close();
  await fake.close();
});

function client(logLines: string[] = [], opts: { backoffMs?: number; maxRetries?: number } = {}) {
  return new GitlabClient({ url: fake.url, token: new Secret(token), logger: createLogger("debug", (l) => logLines.push(l)), ...opts });
}

/** Statuses of the requests the fake saw from index `from` on. */
function statusesSince(from: number) {
  return ci.requests.slice(from).map((r) => r.status);
}

async function failure(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected a failure");
}

describe("GitlabClient", () => {
  test("a 429 with Retry-After: 1 is waited out (at least 1 s), then the request succeeds", async () => {
    const from = ci.requests.length;
    ci.limitNext({ remaining: 1, retryAfterSeconds: 1 });
    const logLines: string[] = [];
    const t0 = performance.now();
    const list = await client(logLines).request("GET", PATH, { signal: AbortSignal.timeout(10_000), schema: pipelineListSchema });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1000);
    expect(list).toEqual([]);
    expect(statusesSince(from)).toEqual([429, 200]);
    const retry = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === "gitlab request retried");
    expect(retry).toMatchObject({
      level: "warn",
      endpoint: "GET /api/v4/projects/ci%2Fclient/pipelines",
      status: 429,
      waitMs: 1000,
      attempt: 1,
    });
  });

  test("a 429 without Retry-After waits until RateLimit-Reset", async () => {
    const from = ci.requests.length;
    ci.limitNext({ remaining: 1, resetSeconds: 1 });
    await client([], { backoffMs: 10 }).request("GET", PATH, { signal: AbortSignal.timeout(10_000), schema: pipelineListSchema });
    const [limited, ok] = ci.requests.slice(from);
    expect(statusesSince(from)).toEqual([429, 200]);
    // RateLimit-Reset is a whole epoch second at least 1 s after the 429.
    expect((ok?.at ?? 0) - (limited?.at ?? 0)).toBeGreaterThanOrEqual(990);
  });

  test("a 429 with neither header backs off exponentially: 100 ms, then 200 ms", async () => {
    const from = ci.requests.length;
    ci.limitNext({ remaining: 2, omitReset: true });
    await client([], { backoffMs: 100 }).request("GET", PATH, { signal: AbortSignal.timeout(10_000), schema: pipelineListSchema });
    const at = ci.requests.slice(from).map((r) => r.at);
    expect(statusesSince(from)).toEqual([429, 429, 200]);
    expect((at[1] ?? 0) - (at[0] ?? 0)).toBeGreaterThanOrEqual(95);
    expect((at[2] ?? 0) - (at[1] ?? 0)).toBeGreaterThanOrEqual(195);
  });

  test("a Retry-After that ends past the caller's deadline fails at once as rate_limited", async () => {
    const from = ci.requests.length;
    ci.limitNext({ remaining: 1, retryAfterSeconds: 30 });
    const t0 = performance.now();
    const err = await failure(
      client().request("GET", PATH, { signal: AbortSignal.timeout(60_000), deadline: Date.now() + 2000, schema: pipelineListSchema }),
    );
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(err).toBeInstanceOf(HttpStatusError);
    expect(classify(err)).toBe("rate_limited");
    expect((err as HttpStatusError).retryAfterSeconds).toBe(30);
    expect(oneLine(err)).toBe("GET /api/v4/projects/ci%2Fclient/pipelines: HTTP 429: Retry later");
    expect(statusesSince(from)).toEqual([429]);
  });

  test("the caller's signal ends a Retry-After wait early", async () => {
    ci.limitNext({ remaining: 1, retryAfterSeconds: 30 });
    const t0 = performance.now();
    const signal = AbortSignal.timeout(300);
    const err = await failure(client().request("GET", PATH, { signal, schema: pipelineListSchema }));
    expect(performance.now() - t0).toBeLessThan(1500);
    expect(classify(err, signal)).toBe("timeout");
    ci.limitNext({ remaining: 0 });
  });

  test("a 429 that persists past the retry budget is reported as rate_limited", async () => {
    const from = ci.requests.length;
    ci.limitNext({ remaining: 10, retryAfterSeconds: 0 });
    const err = await failure(
      client([], { maxRetries: 2 }).request("GET", PATH, { signal: AbortSignal.timeout(10_000), schema: pipelineListSchema }),
    );
    expect(classify(err)).toBe("rate_limited");
    expect(statusesSince(from)).toEqual([429, 429, 429]);
    ci.limitNext({ remaining: 0 });
  });

  test("a 502 on a GET is retried; a 500 on a POST is not (it may have taken effect)", async () => {
    let from = ci.requests.length;
    ci.limitNext({ remaining: 2, status: 502 });
    await client([], { backoffMs: 10 }).request("GET", PATH, { signal: AbortSignal.timeout(10_000), schema: pipelineListSchema });
    expect(statusesSince(from)).toEqual([502, 502, 200]);

    from = ci.requests.length;
    ci.limitNext({ remaining: 1, status: 500 });
    const err = await failure(
      client([], { backoffMs: 10 }).request("POST", "/projects/ci%2Fclient/pipeline", {
        signal: AbortSignal.timeout(10_000),
        schema: z.unknown(),
        json: { ref: "main" },
      }),
    );
    expect(classify(err)).toBe("server_error");
    expect(oneLine(err)).toBe("POST /api/v4/projects/ci%2Fclient/pipeline: HTTP 500: 500 Internal Server Error");
    expect(statusesSince(from)).toEqual([500]);
  });

  test("401 and 403 keep GitLab's message and classify as unauthorized / forbidden; the token shows nowhere", async () => {
    const logLines: string[] = [];
    const noToken = await failure(
      client(logLines).request("GET", PATH, { signal: AbortSignal.timeout(5000), schema: pipelineListSchema, token: null }),
    );
    expect(classify(noToken)).toBe("unauthorized");
    expect(oneLine(noToken)).toBe("GET /api/v4/projects/ci%2Fclient/pipelines: HTTP 401: 401 Unauthorized");

    fake.state.addUser({ username: "guest-user" });
    const guest = fake.state.issueApiToken("guest-user");
    ci.addProject({ path: "ci/guarded", jobs: [], members: { "guest-user": "guest" } });
    const forbidden = await failure(
      client(logLines).request("POST", "/projects/ci%2Fguarded/pipeline", {
        signal: AbortSignal.timeout(5000),
        schema: z.unknown(),
        json: { ref: "main" },
        token: new Secret(guest),
      }),
    );
    expect(classify(forbidden)).toBe("forbidden");
    expect(oneLine(forbidden)).toBe("POST /api/v4/projects/ci%2Fguarded/pipeline: HTTP 403: 403 Forbidden");
    const text = [oneLine(noToken), oneLine(forbidden), ...logLines].join("\n");
    expect(text).not.toContain(token);
    expect(text).not.toContain(guest);
  });

  test("a body that does not match its schema is bad_response naming the field", async () => {
    const err = await failure(client().request("GET", PATH, { signal: AbortSignal.timeout(5000), schema: z.object({ id: z.number() }) }));
    expect(classify(err)).toBe("bad_response");
    expect(oneLine(err)).toBe(
      "GET /api/v4/projects/ci%2Fclient/pipelines: unexpected response at (top level): Invalid input: expected object, received array",
    );
  });

  test("a redirected GET (a trace in object storage) is followed once, without the token on another origin", async () => {
    const seen: IncomingHttpHeaders[] = [];
    const listen = async (handler: Parameters<typeof createServer>[1]) => {
      const server = createServer(handler);
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
    };
    const storage = await listen((req, res) => {
      seen.push(req.headers);
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("ERROR: Job failed: exit code 1\n");
    });
    const gitlab = await listen((_req, res) => {
      res.writeHead(302, { location: `${storage.url}/trace/7?sig=abc` });
      res.end();
    });
    const close = (s: Server) => new Promise<void>((resolve) => s.close(() => resolve()));
    try {
      const secret = "glpat-redirect-0a1b2c3d4e5f";
      const c = new GitlabClient({ url: gitlab.url, token: new Secret(secret) });
      const text = await c.request("GET", "/projects/1/jobs/7/trace", { signal: AbortSignal.timeout(5000), expect: "text" });
      expect(text).toBe("ERROR: Job failed: exit code 1\n");
      expect(seen).toHaveLength(1);
      expect(seen[0]?.["private-token"]).toBeUndefined();
    } finally {
      await close(storage.server);
      await close(gitlab.server);
    }
  });

  test("rateLimitWaitMs reads Retry-After seconds or date, RateLimit-Reset as epoch or delta, else doubles the backoff", () => {
    const now = Date.parse("2026-11-27T00:00:00Z");
    expect(rateLimitWaitMs({ "retry-after": "7" }, 0, 1000, now)).toBe(7000);
    expect(rateLimitWaitMs({ "retry-after": "Fri, 27 Nov 2026 00:00:05 GMT" }, 0, 1000, now)).toBe(5000);
    expect(rateLimitWaitMs({ "ratelimit-reset": String(now / 1000 + 3) }, 0, 1000, now)).toBe(3000);
    expect(rateLimitWaitMs({ "ratelimit-reset": "4" }, 0, 1000, now)).toBe(4000);
    expect(rateLimitWaitMs({}, 0, 1000, now)).toBe(1000);
    expect(rateLimitWaitMs({}, 3, 1000, now)).toBe(8000);
    expect(rateLimitWaitMs({}, 10, 1000, now)).toBe(60_000);
  });
});

describe("bounded answers", () => {
  test("a trace longer than 8 MiB is cut at 8 MiB; a JSON answer that long is bad_response", async () => {
    const big = Buffer.alloc(MAX_BODY_BYTES + 1024, "x");
    const server = createServer((req, res) => {
      res.writeHead(200, { "content-type": req.url?.endsWith("/trace") ? "text/plain" : "application/json" });
      res.end(big);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const addr = server.address();
    const url = `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
    const client = new GitlabClient({ url });
    try {
      const trace = await client.request("GET", "/projects/1/jobs/2/trace", { signal: AbortSignal.timeout(10_000), expect: "text" });
      expect(trace.length).toBe(MAX_BODY_BYTES);
      await expect(
        client.request("GET", "/projects/1", { signal: AbortSignal.timeout(10_000), schema: z.unknown() }),
      ).rejects.toMatchObject({
        reason: "bad_response",
        message: `GET /api/v4/projects/1: answer larger than ${MAX_BODY_BYTES} bytes`,
      });
    } finally {
      await client.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
