import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { deadline } from "../../../src/deadline.js";
import { GitlabBudget, routeTemplate } from "../../../src/gitlab/budget.js";
import { GitlabClient } from "../../../src/gitlab/client.js";
import { findUser, lookupToken } from "../../../src/gitlab/users.js";
import { ProbeError } from "../../../src/reasons.js";
import { Secret } from "../../../src/secret.js";
import { startFakeGitlab, type FakeGitlab } from "../../fake-gitlab/server.js";
import { testSigningKey } from "../../helpers/gitlab.js";

let gitlab: FakeGitlab;
let adminToken: string;

beforeAll(async () => {
  gitlab = await startFakeGitlab(testSigningKey());
  adminToken = gitlab.state.issueApiToken("root");
  gitlab.state.addUser({ username: "tanaka", password: "ldap-pw-Tanaka-2026" });
  gitlab.state.addUser({ username: "project_42_bot_aa", password: "glpat-projectBotToken00042" });
});

afterAll(async () => {
  await gitlab.close();
});

function apiRequests(since: number): string[] {
  return gitlab.state.requests.filter((r) => r.at >= since && r.path.startsWith("/api/v4/")).map((r) => `${r.method} ${r.path}`);
}

describe("routeTemplate", () => {
  test.each([
    ["GET", "/api/v4/users", "GET /api/v4/users"],
    ["GET", "/api/v4/users/42", "GET /api/v4/users/:id"],
    ["GET", "/api/v4/personal_access_tokens/self", "GET /api/v4/personal_access_tokens/self"],
    ["GET", "/api/v4/projects/ci%2Fcanary/pipelines/55/jobs", "GET /api/v4/projects/:id/pipelines/:id/jobs"],
    ["POST", "/api/v4/projects/7/pipeline", "POST /api/v4/projects/:id/pipeline"],
    ["GET", "/api/v4/projects/ci%2Fcanary/jobs/9/trace", "GET /api/v4/projects/:id/jobs/:id/trace"],
    ["GET", "/api/v4/groups/ci/variables/DOCKER_AUTH_CONFIG", "GET /api/v4/groups/:id/variables/:key"],
    ["GET", "/api/v4/deploy_tokens?page=2", "GET /api/v4/deploy_tokens"],
  ])("%s %s is counted as %s", (method, path, template) => {
    expect(routeTemplate(method, path)).toBe(template);
  });
});

describe("the GitLab API budget", () => {
  test("at most N requests a minute: the next one fails as rate_limited when waiting would outlast the caller's deadline", async () => {
    const budget = new GitlabBudget({ requestsPerMinute: 3, cacheTtlMs: 60_000 });
    const d = deadline(2000);
    for (let i = 0; i < 3; i++) await budget.take("GET /api/v4/users", d.signal);
    const err = await budget.take("GET /api/v4/users", d.signal).catch((e: unknown) => e);
    d.dispose();
    expect(err).toBeInstanceOf(ProbeError);
    expect((err as ProbeError).reason).toBe("rate_limited");
    expect((err as ProbeError).message).toBe("GET /api/v4/users: GitLab API budget spent (3 requests a minute); next slot in 60s");
  });

  test("Retry-After of a 429 and a spent RateLimit-Remaining pause every request until they pass", async () => {
    let now = Date.parse("2026-12-01T00:00:00Z");
    const budget = new GitlabBudget({ requestsPerMinute: 60, cacheTtlMs: 60_000, now: () => now });
    budget.observe("GET /api/v4/users", 429, { "retry-after": "30" });
    const d = deadline(1000);
    const err = (await budget.take("GET /api/v4/users", d.signal).catch((e: unknown) => e)) as ProbeError;
    expect(err.message).toBe("GET /api/v4/users: GitLab asked to wait (Retry-After or RateLimit-Remaining 0); next slot in 30s");
    now += 30_000;
    await budget.take("GET /api/v4/users", d.signal);
    budget.observe("GET /api/v4/users", 200, { "ratelimit-remaining": "0", "ratelimit-reset": String(Math.floor((now + 45_000) / 1000)) });
    const again = (await budget.take("GET /api/v4/users", d.signal).catch((e: unknown) => e)) as ProbeError;
    d.dispose();
    expect(again.message).toBe("GET /api/v4/users: GitLab asked to wait (Retry-After or RateLimit-Remaining 0); next slot in 45s");
  });

  test("owner and token look-ups of ten runners sharing one user cost one request each, counted by route and status", async () => {
    const counted: string[] = [];
    const budget = new GitlabBudget({
      requestsPerMinute: 60,
      cacheTtlMs: 60_000,
      onRequest: (endpoint, code) => counted.push(`${endpoint} ${code}`),
    });
    const client = new GitlabClient({ url: gitlab.url, token: new Secret(adminToken), budget });
    const since = Date.now();
    for (let i = 0; i < 10; i++) {
      expect((await findUser(client, "tanaka", AbortSignal.timeout(5000)))?.username).toBe("tanaka");
      expect((await lookupToken(client, new Secret("glpat-projectBotToken00042"), AbortSignal.timeout(5000))).kind).toBe("token");
      // A refusal is a fact too: a revoked or unknown token is not asked about again within the interval.
      expect((await lookupToken(client, new Secret("glpat-notATokenGitLabKnows"), AbortSignal.timeout(5000))).kind).toBe("none");
    }
    const sent = apiRequests(since);
    expect(sent.filter((r) => r === "GET /api/v4/users")).toHaveLength(1);
    expect(sent.filter((r) => r === "GET /api/v4/personal_access_tokens/self")).toHaveLength(2);
    expect(counted.filter((c) => c === "GET /api/v4/personal_access_tokens/self 200")).toHaveLength(1);
    expect(counted.filter((c) => c === "GET /api/v4/personal_access_tokens/self 401")).toHaveLength(1);
    expect(counted).toContain("GET /api/v4/users 200");
    expect(counted.every((c) => !c.includes("glpat-"))).toBe(true);
  });

  test("a cached look-up is asked again once its interval is over", async () => {
    let now = Date.now();
    const budget = new GitlabBudget({ requestsPerMinute: 60, cacheTtlMs: 60_000, now: () => now });
    const client = new GitlabClient({ url: gitlab.url, token: new Secret(adminToken), budget });
    const since = Date.now();
    await findUser(client, "tanaka", AbortSignal.timeout(5000));
    now += 59_000;
    await findUser(client, "tanaka", AbortSignal.timeout(5000));
    now += 2_000;
    await findUser(client, "tanaka", AbortSignal.timeout(5000));
    expect(apiRequests(since).filter((r) => r === "GET /api/v4/users")).toHaveLength(2);
  });
});
