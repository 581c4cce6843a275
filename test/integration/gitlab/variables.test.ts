import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { GitlabBudget } from "../../../src/gitlab/budget.js";
import { GitlabClient } from "../../../src/gitlab/client.js";
import { heldCredentials, heldFromCrawl } from "../../../src/gitlab/held.js";
import { crawlVariables } from "../../../src/gitlab/variables.js";
import { jobTokenPaths } from "../../../src/gitlab/job-token.js";
import { Secret } from "../../../src/secret.js";
import { ciState } from "../../fake-gitlab/pipelines.js";
import { startFakeGitlab, type FakeGitlab } from "../../fake-gitlab/server.js";
import { variablesState } from "../../fake-gitlab/variables.js";
import { testSigningKey } from "../../helpers/gitlab.js";

// A private fake GitLab: a crawl of `variables: true` reads every group and project, and the 429 plan is its own.
let fake: FakeGitlab;
let token: string;

const dac = (user: string, host = "registry.example.jp") =>
  JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${user}:${user}-secret-77`).toString("base64") } } });

beforeAll(async () => {
  fake = await startFakeGitlab(testSigningKey());
  token = fake.state.issueApiToken("root");
  const v = variablesState(fake.state);
  for (let i = 0; i < 205; i++) v.addProject(`acme/platform/build/p${String(i).padStart(3, "0")}`);
  v.addProject("acme/web/site");
  v.addProject("other/tool");
  v.addVariable({ holder: "instance", key: "DOCKER_AUTH_CONFIG", value: dac("instance-bot") });
  v.addVariable({ holder: "group", path: "acme/platform", key: "DOCKER_AUTH_CONFIG", value: dac("t.yamada"), masked: true });
  v.addVariable({ holder: "group", path: "acme/platform", key: "OTHER", value: "x" });
  v.addVariable({
    holder: "project",
    path: "acme/platform/build/p007",
    key: "DOCKER_AUTH_CONFIG",
    value: dac("gitlab+deploy-token-7"),
    protected: true,
  });
  v.addVariable({
    holder: "project",
    path: "acme/platform/build/p008",
    key: "DOCKER_AUTH_CONFIG",
    value: dac("staging-bot"),
    environment_scope: "staging",
  });
  v.addVariable({ holder: "group", path: "acme/web", key: "DOCKER_AUTH_CONFIG", value: dac("hidden-user"), hidden: true });
});

afterAll(async () => {
  await fake.close();
});

function client(budget?: GitlabBudget): GitlabClient {
  return new GitlabClient({ url: fake.url, token: new Secret(token), backoffMs: 50, ...(budget ? { budget } : {}) });
}

describe("crawlVariables reads DOCKER_AUTH_CONFIG from the instance, every group and every project", () => {
  test("pages through lists (keyset for projects, x-next-page for the rest), keeps every field, and reads a hidden value as null", async () => {
    const crawl = await crawlVariables(client(), true, AbortSignal.timeout(60_000));
    expect(crawl.errors).toEqual([]);
    expect(crawl.projects).toHaveLength(207);
    expect(crawl.groups.map((g) => g.fullPath).sort()).toEqual(["acme", "acme/platform", "acme/platform/build", "acme/web", "other"]);
    expect(
      crawl.variables.map((v) => [
        v.holder.kind,
        v.holder.path,
        v.value === null ? null : "value",
        v.masked,
        v.hidden,
        v.protected,
        v.environmentScope,
      ]),
    ).toEqual([
      ["instance", "", "value", false, false, false, "*"],
      ["group", "acme/platform", "value", true, false, false, "*"],
      ["group", "acme/web", null, true, true, false, "*"],
      ["project", "acme/platform/build/p007", "value", false, false, true, "*"],
      ["project", "acme/platform/build/p008", "value", false, false, false, "staging"],
    ]);
    // 1 page of groups, 3 keyset pages of projects, the instance, 5 groups and 207 projects: one page each.
    expect(crawl.requests).toBe(1 + 3 + 1 + 5 + 207);
    const projectPages = ciState(fake.state).requests.filter((r) => r.path === "/api/v4/projects").length;
    expect(projectPages).toBeGreaterThanOrEqual(3);
  });

  test("the effective value per project: the project's own, else the nearest group's, else the instance's; the others are shadowed by it", async () => {
    const held = heldFromCrawl(await crawlVariables(client(), true, AbortSignal.timeout(60_000)));
    expect(held.views.map((v) => [v.runner, v.effective_projects, v.hidden_by, v.unreadable !== null])).toEqual([
      // Only other/tool has nothing nearer than the instance.
      ["gitlab:instance", 1, null, false],
      // 205 projects below acme/platform, one of which has its own.
      ["gitlab:group/acme/platform", 204, null, false],
      ["gitlab:group/acme/web", 1, null, true],
      ["gitlab:project/acme/platform/build/p007", 1, null, false],
      // A scoped variable applies to jobs of that environment only: it hides nothing for the others.
      ["gitlab:project/acme/platform/build/p008@staging", 0, null, false],
    ]);
    const creds = await heldCredentials(held, { signal: AbortSignal.timeout(10_000), helperTimeoutMs: 1000 });
    expect(creds.map((c) => [c.runner, c.username, c.source, c.inUse, c.shadowedBy, c.environmentScope, c.error?.reason])).toEqual([
      ["gitlab:instance", "instance-bot", `gitlab:instance#DOCKER_AUTH_CONFIG#auths["registry.example.jp"]`, true, null, "*", undefined],
      [
        "gitlab:group/acme/platform",
        "t.yamada",
        `gitlab:group/acme/platform#DOCKER_AUTH_CONFIG#auths["registry.example.jp"]`,
        true,
        null,
        "*",
        undefined,
      ],
      ["gitlab:group/acme/web", "", "gitlab:group/acme/web#DOCKER_AUTH_CONFIG", false, null, "*", "credential_missing"],
      [
        "gitlab:project/acme/platform/build/p007",
        "gitlab+deploy-token-7",
        `gitlab:project/acme/platform/build/p007#DOCKER_AUTH_CONFIG#auths["registry.example.jp"]`,
        true,
        null,
        "*",
        undefined,
      ],
      [
        "gitlab:project/acme/platform/build/p008@staging",
        "staging-bot",
        `gitlab:project/acme/platform/build/p008#DOCKER_AUTH_CONFIG[environment_scope=staging]#auths["registry.example.jp"]`,
        true,
        null,
        "staging",
        undefined,
      ],
    ]);
    expect(creds.find((c) => c.error)?.error?.message).toBe(
      "gitlab:group/acme/web#DOCKER_AUTH_CONFIG: masked and hidden: GitLab does not return its value, so ci-prober cannot check it",
    );
    for (const c of creds) expect(JSON.stringify(c)).not.toContain("-secret-77");
  });

  test("a group whose every project has its own value is shadowed as a whole by theirs", async () => {
    const v = variablesState(fake.state);
    v.addProject("solo/only");
    v.addVariable({ holder: "group", path: "solo", key: "DOCKER_AUTH_CONFIG", value: dac("group-user") });
    v.addVariable({ holder: "project", path: "solo/only", key: "DOCKER_AUTH_CONFIG", value: dac("project-user") });
    const held = heldFromCrawl(await crawlVariables(client(), ["solo"], AbortSignal.timeout(60_000)));
    const creds = await heldCredentials(held, { signal: AbortSignal.timeout(10_000), helperTimeoutMs: 1000 });
    const solo = creds.filter((c) => c.runner.includes("solo"));
    expect(solo.map((c) => [c.runner, c.inUse, c.shadowedBy])).toEqual([
      ["gitlab:group/solo", false, `gitlab:project/solo/only#DOCKER_AUTH_CONFIG#auths["registry.example.jp"]`],
      ["gitlab:project/solo/only", true, null],
    ]);
  });

  test("a listed path reads that group, its ancestors' and descendants' variables and its projects only", async () => {
    const crawl = await crawlVariables(client(), ["acme/platform/build", "other/tool"], AbortSignal.timeout(60_000));
    expect(crawl.errors).toEqual([]);
    expect(crawl.groups.map((g) => g.fullPath).sort()).toEqual(["acme", "acme/platform", "acme/platform/build", "other"]);
    expect(crawl.projects).toHaveLength(206);
    expect(crawl.variables.map((v) => `${v.holder.kind}:${v.holder.path}`)).toEqual([
      "instance:",
      "group:acme/platform",
      "project:acme/platform/build/p007",
      "project:acme/platform/build/p008",
    ]);
  });

  test("429 with Retry-After is waited out and the crawl completes; a token that may not read variables is reported per holder", async () => {
    ciState(fake.state).rateLimit = { remaining: 2, retryAfterSeconds: 1 };
    const t0 = Date.now();
    const crawl = await crawlVariables(client(), ["other"], AbortSignal.timeout(60_000));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1000);
    expect(crawl.errors).toEqual([]);
    expect(crawl.variables.map((v) => v.holder.kind)).toEqual(["instance"]);

    fake.state.addUser({ username: "dev-no-admin" });
    const weak = new GitlabClient({ url: fake.url, token: new Secret(fake.state.issueApiToken("dev-no-admin")) });
    const denied = await crawlVariables(weak, ["other"], AbortSignal.timeout(60_000));
    expect(denied.variables).toEqual([]);
    expect(denied.errors).toEqual([
      "gitlab:instance: GET /api/v4/admin/ci/variables: HTTP 403: 403 Forbidden",
      "gitlab:group/other: GET /api/v4/groups/:id/variables: HTTP 403: 403 Forbidden".replace(
        ":id",
        String(variablesState(fake.state).findGroup("other")?.id),
      ),
      "gitlab:project/other/tool: GET /api/v4/projects/:id/variables: HTTP 403: 403 Forbidden".replace(
        ":id",
        String(variablesState(fake.state).findProject("other/tool")?.id),
      ),
    ]);
  });

  test("every request of a crawl takes a slot of the API budget and is counted by its route template", async () => {
    const sent: string[] = [];
    const budget = new GitlabBudget({
      requestsPerMinute: 600,
      cacheTtlMs: 60_000,
      onRequest: (endpoint, code) => sent.push(`${endpoint} ${code}`),
    });
    const crawl = await crawlVariables(client(budget), ["other"], AbortSignal.timeout(30_000));
    expect(crawl.requests).toBe(6);
    expect(sent.sort()).toEqual([
      "GET /api/v4/admin/ci/variables 200",
      "GET /api/v4/groups/:id 200",
      "GET /api/v4/groups/:id/descendant_groups 200",
      "GET /api/v4/groups/:id/projects 200",
      "GET /api/v4/groups/:id/variables 200",
      "GET /api/v4/projects/:id/variables 200",
    ]);
  });

  test("the job token's paths: the registry host from a project's container_registry_image_prefix, and the instance's host:port", async () => {
    const gitlab = { url: fake.url, intervalMs: 60_000 };
    const proxy = new URL(fake.url).host;
    expect(await jobTokenPaths(gitlab, () => client(), AbortSignal.timeout(10_000))).toEqual([proxy]);
    variablesState(fake.state).registryHost = "registry.acme.example:5050";
    // Asked again only after gitlab.interval: a fresh URL key stands for a later round here.
    expect(await jobTokenPaths({ ...gitlab, url: `${fake.url}/` }, () => client(), AbortSignal.timeout(10_000))).toEqual([
      "registry.acme.example:5050",
      proxy,
    ]);
    expect(await jobTokenPaths({ ...gitlab, registry: "registry.set.example" }, () => client(), AbortSignal.timeout(10_000))).toEqual([
      "registry.set.example",
      proxy,
    ]);
  });
});
