import { generateKeyPairSync } from "node:crypto";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { GitlabClient } from "../../../src/gitlab/client.js";
import { createLogger } from "../../../src/log.js";
import { checkCredential } from "../../../src/probes/credential-check.js";
import { Secret } from "../../../src/secret.js";
import type { Credential } from "../../../src/types.js";
import { signingKey } from "../../fake-gitlab/jwt.js";
import { startFakeGitlab, type FakeGitlab } from "../../fake-gitlab/server.js";

// Credential checks against an in-process fake GitLab (its Users, personal
// access token and deploy token API), one instance for this file.

const SOURCE = '/home/gitlab-runner/.docker/config.json#auths["registry.example.jp"]';
const LDAP = (uid: string) => [{ provider: "ldapmain", extern_uid: `uid=${uid},ou=people,dc=example,dc=jp` }];

let pem: string;
let gitlab: FakeGitlab;
let adminToken: Secret;
let client: GitlabClient;
const logLines: string[] = [];

beforeAll(async () => {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  gitlab = await startFakeGitlab(signingKey(pem));
  adminToken = new Secret(gitlab.state.issueApiToken("root"));
  client = new GitlabClient({ url: gitlab.url, token: adminToken, logger: createLogger("debug", (line) => logLines.push(line)) });
});

afterAll(async () => {
  await gitlab.close();
});

function credential(username: string, password: string): Credential {
  return {
    runner: "runner-1",
    registry: "registry.example.jp",
    username,
    secretType: "password",
    kind: "unknown",
    source: SOURCE,
    secret: new Secret(password),
  };
}

const base = (username: string) => ({ runner: "runner-1", registry: "registry.example.jp", username });

function signal(): AbortSignal {
  return AbortSignal.timeout(10_000);
}

async function control(path: string, body: unknown = {}): Promise<void> {
  const res = await fetch(`${gitlab.url}${path}`, { method: "POST", body: JSON.stringify(body), signal: signal() });
  expect(res.status).toBe(200);
}

function tokenSelfCalls(username: string): number {
  return gitlab.state.log.filter((e) => e.event === "token_self" && e.username === username).length;
}

describe("human users", () => {
  test("an LDAP user's password is kind personal, state active, with no expiry, and is never sent to GitLab", async () => {
    gitlab.state.addUser({ username: "tanaka", password: "ldap-pw-Tanaka-2026", identities: LDAP("tanaka") });
    const check = await checkCredential(client, credential("tanaka", "ldap-pw-Tanaka-2026"), signal());
    expect(check).toEqual({ ...base("tanaka"), kind: "personal", state: "active" });
    expect(tokenSelfCalls("tanaka")).toBe(0);
    expect(gitlab.state.log.filter((e) => e.event === "token_self" && e.username === "").length).toBe(0);
  });

  test("the same LDAP user, blocked by the LDAP sync, is state ldap_blocked", async () => {
    gitlab.state.addUser({ username: "sato", password: "ldap-pw-Sato-2026", identities: LDAP("sato") });
    const before = await checkCredential(client, credential("sato", "ldap-pw-Sato-2026"), signal());
    expect(before.state).toBe("active");
    gitlab.state.setState("sato", "ldap_blocked");
    const after = await checkCredential(client, credential("sato", "ldap-pw-Sato-2026"), signal());
    expect(after).toEqual({ ...base("sato"), kind: "personal", state: "ldap_blocked" });
  });

  test.each(["blocked", "deactivated", "banned", "blocked_pending_approval"] as const)(
    "a %s user is reported with that state",
    async (state) => {
      const username = `user-${state}`;
      gitlab.state.addUser({ username, password: `pw-${state}-1234`, state });
      const check = await checkCredential(client, credential(username, `pw-${state}-1234`), signal());
      expect(check).toEqual({ ...base(username), kind: "personal", state });
    },
  );

  test("a personal access token with expires_at 2026-12-24 expires at 2026-12-24T00:00:00Z, epoch 1798070400", async () => {
    gitlab.state.addUser({ username: "suzuki", password: "glpat-suzukiPersonalToken01", isAccessToken: true, expiresAt: "2026-12-24" });
    const check = await checkCredential(client, credential("suzuki", "glpat-suzukiPersonalToken01"), signal());
    expect(check).toEqual({ ...base("suzuki"), kind: "personal", state: "active", expiresAt: 1798070400 });
    expect(tokenSelfCalls("suzuki")).toBe(1);
  });

  test("a revoked personal access token is state revoked", async () => {
    gitlab.state.addUser({ username: "ito", password: "glpat-itoPersonalToken0002", isAccessToken: true, expiresAt: "2027-06-30" });
    await control("/-/test/users/ito/revoke");
    const check = await checkCredential(client, credential("ito", "glpat-itoPersonalToken0002"), signal());
    expect(check).toEqual({ ...base("ito"), kind: "personal", state: "revoked" });
  });

  test("an expired personal access token is state expired", async () => {
    gitlab.state.addUser({ username: "kato", password: "glpat-katoPersonalToken003", isAccessToken: true, expiresAt: "2020-01-01" });
    const check = await checkCredential(client, credential("kato", "glpat-katoPersonalToken003"), signal());
    expect(check).toEqual({ ...base("kato"), kind: "personal", state: "expired" });
  });

  test("a personal access token stored under a name GitLab ignores (oauth2) belongs to the token's user", async () => {
    gitlab.state.addUser({ username: "kimura", password: "glpat-kimuraPersonalTok005", isAccessToken: true, expiresAt: "2026-12-24" });
    const before = await checkCredential(client, credential("oauth2", "glpat-kimuraPersonalTok005"), signal());
    expect(before).toEqual({ ...base("oauth2"), kind: "personal", state: "active", expiresAt: 1798070400 });
    // A blocked user's token may not call the API at all; GitLab's 403 text says the account is blocked.
    gitlab.state.setState("kimura", "ldap_blocked");
    const after = await checkCredential(client, credential("oauth2", "glpat-kimuraPersonalTok005"), signal());
    expect(after).toEqual({ ...base("oauth2"), kind: "unknown", state: "blocked" });
  });

  test("a bot's token stored under a human's name is the bot's: kind bot", async () => {
    gitlab.state.addUser({ username: "shimizu", password: "ldap-pw-Shimizu-01" });
    gitlab.state.addUser({ username: "project_77_bot_5e5e5e", password: "glpat-bot77Token000000077", expiresAt: "2027-03-31" });
    const check = await checkCredential(client, credential("shimizu", "glpat-bot77Token000000077"), signal());
    expect(check).toEqual({ ...base("shimizu"), kind: "bot", state: "active", expiresAt: 1806451200 });
  });

  test("a revoked token under a name GitLab lacks is kind unknown, state revoked", async () => {
    gitlab.state.addUser({ username: "ogawa", password: "glpat-ogawaPersonalToken06", isAccessToken: true });
    gitlab.state.revoke("ogawa");
    const check = await checkCredential(client, credential("token", "glpat-ogawaPersonalToken06"), signal());
    expect(check).toEqual({ ...base("token"), kind: "unknown", state: "revoked" });
  });

  test("a blocked user's token reports the owner's state, not the token's", async () => {
    gitlab.state.addUser({
      username: "yamada",
      password: "glpat-yamadaPersonalTok04",
      isAccessToken: true,
      expiresAt: "2027-06-30",
      state: "blocked",
    });
    const check = await checkCredential(client, credential("yamada", "glpat-yamadaPersonalTok04"), signal());
    expect(check).toEqual({ ...base("yamada"), kind: "personal", state: "blocked" });
  });
});

describe("bots, service accounts, deploy and job tokens", () => {
  test("a project access token's bot user is kind bot with the token's expiry (2027-03-31 → 1806451200)", async () => {
    gitlab.state.addUser({ username: "project_42_bot_3f9a1c", password: "glpat-projectBotToken00042", expiresAt: "2027-03-31" });
    const check = await checkCredential(client, credential("project_42_bot_3f9a1c", "glpat-projectBotToken00042"), signal());
    expect(check).toEqual({ ...base("project_42_bot_3f9a1c"), kind: "bot", state: "active", expiresAt: 1806451200 });
  });

  test("a group access token's bot user whose token was revoked is kind bot, state revoked", async () => {
    gitlab.state.addUser({ username: "group_7_bot_77aa01", password: "glpat-groupBotToken0000007", expiresAt: "2027-03-31" });
    await control("/-/test/users/group_7_bot_77aa01/revoke");
    const check = await checkCredential(client, credential("group_7_bot_77aa01", "glpat-groupBotToken0000007"), signal());
    expect(check).toEqual({ ...base("group_7_bot_77aa01"), kind: "bot", state: "revoked" });
  });

  test("a service account is kind service_account", async () => {
    gitlab.state.addUser({
      username: "service_account_group_5_c468757e",
      password: "glpat-serviceAccountTok005",
      userType: "service_account",
      expiresAt: "2027-03-31",
    });
    const check = await checkCredential(client, credential("service_account_group_5_c468757e", "glpat-serviceAccountTok005"), signal());
    expect(check).toEqual({ ...base("service_account_group_5_c468757e"), kind: "service_account", state: "active", expiresAt: 1806451200 });
  });

  test("a deploy token is kind deploy_token with its exact expiry, and state revoked once revoked", async () => {
    gitlab.state.addUser({
      username: "gitlab+deploy-token-7",
      password: "gldt-deployToken7Secret",
      expiresAt: "2027-01-15T09:30:00.000Z",
      actions: ["pull"],
    });
    const before = await checkCredential(client, credential("gitlab+deploy-token-7", "gldt-deployToken7Secret"), signal());
    expect(before).toEqual({ ...base("gitlab+deploy-token-7"), kind: "deploy_token", state: "active", expiresAt: 1800005400 });
    await control("/-/test/users/gitlab+deploy-token-7/revoke");
    const after = await checkCredential(client, credential("gitlab+deploy-token-7", "gldt-deployToken7Secret"), signal());
    expect(after).toEqual({ ...base("gitlab+deploy-token-7"), kind: "deploy_token", state: "revoked", expiresAt: 1800005400 });
    // A deploy token cannot describe itself through the API; it is never sent there.
    expect(tokenSelfCalls("gitlab+deploy-token-7")).toBe(0);
  });

  test("an expired deploy token is state expired", async () => {
    gitlab.state.addUser({ username: "gitlab+deploy-token-8", password: "gldt-deployToken8Secret", expiresAt: "2020-02-14T00:00:00.000Z" });
    const check = await checkCredential(client, credential("gitlab+deploy-token-8", "gldt-deployToken8Secret"), signal());
    expect(check).toEqual({ ...base("gitlab+deploy-token-8"), kind: "deploy_token", state: "expired", expiresAt: 1581638400 });
  });

  test("a deploy token with a custom username is found through /deploy_tokens", async () => {
    gitlab.state.addUser({ username: "ci-puller", password: "gldt-customDeployToken", deployToken: true });
    const check = await checkCredential(client, credential("ci-puller", "gldt-customDeployToken"), signal());
    expect(check).toEqual({ ...base("ci-puller"), kind: "deploy_token", state: "active" });
  });

  test("a deploy-token username GitLab does not have is kind deploy_token, state not_found", async () => {
    const check = await checkCredential(client, credential("gitlab+deploy-token-999", "gldt-gone"), signal());
    expect(check).toEqual({ ...base("gitlab+deploy-token-999"), kind: "deploy_token", state: "not_found" });
  });

  test("a job token is kind job_token, state unknown, without asking GitLab", async () => {
    const requestsBefore = logLines.length;
    const check = await checkCredential(client, credential("gitlab-ci-token", "glcbt-64_jobTokenValue"), signal());
    expect(check).toEqual({ ...base("gitlab-ci-token"), kind: "job_token", state: "unknown" });
    expect(logLines.slice(requestsBefore).filter((l) => l.includes('"msg":"gitlab request"'))).toEqual([]);
  });
});

describe("unknown users and failures", () => {
  test("a user GitLab does not know is kind unknown, state not_found", async () => {
    const check = await checkCredential(client, credential("departed-engineer", "old-password-2019"), signal());
    expect(check).toEqual({ ...base("departed-engineer"), kind: "unknown", state: "not_found" });
  });

  test("a bad admin token gives error.reason unauthorized with GitLab's message, state unknown", async () => {
    const badToken = new Secret("glpat-notTheAdminToken000");
    const bad = new GitlabClient({ url: gitlab.url, token: badToken });
    gitlab.state.addUser({ username: "nakamura", password: "ldap-pw-Nakamura-1" });
    const check = await checkCredential(bad, credential("nakamura", "ldap-pw-Nakamura-1"), signal());
    expect(check).toEqual({
      ...base("nakamura"),
      kind: "unknown",
      state: "unknown",
      error: { reason: "unauthorized", message: "GET /api/v4/users: HTTP 401: 401 Unauthorized" },
    });
  });

  test("a bad admin token keeps the kind the username's form tells", async () => {
    const bad = new GitlabClient({ url: gitlab.url, token: new Secret("glpat-notTheAdminToken001") });
    const check = await checkCredential(bad, credential("project_9_bot_aa", "glpat-whatever000000001"), signal());
    expect(check).toEqual({
      ...base("project_9_bot_aa"),
      kind: "bot",
      state: "unknown",
      error: { reason: "unauthorized", message: "GET /api/v4/users: HTTP 401: 401 Unauthorized" },
    });
  });

  test("a non-administrator token cannot list deploy tokens: error.reason forbidden", async () => {
    gitlab.state.addUser({ username: "watanabe", password: "pw-watanabe-0001" });
    const userClient = new GitlabClient({ url: gitlab.url, token: new Secret(gitlab.state.issueApiToken("watanabe")) });
    const check = await checkCredential(userClient, credential("gitlab+deploy-token-7", "gldt-deployToken7Secret"), signal());
    expect(check).toEqual({
      ...base("gitlab+deploy-token-7"),
      kind: "deploy_token",
      state: "unknown",
      error: { reason: "forbidden", message: "GET /api/v4/deploy_tokens: HTTP 403: 403 Forbidden" },
    });
  });

  test("a non-administrator token still tells a human from a bot (through GET /users/:id)", async () => {
    gitlab.state.addUser({ username: "kobayashi", password: "pw-kobayashi-01" });
    gitlab.state.addUser({ username: "hayashi", password: "ldap-pw-Hayashi-01", identities: LDAP("hayashi") });
    gitlab.state.addUser({ username: "service_account_0a1b2c", password: "glpat-serviceAccountTok006", userType: "service_account" });
    const userClient = new GitlabClient({ url: gitlab.url, token: new Secret(gitlab.state.issueApiToken("kobayashi")) });
    const human = await checkCredential(userClient, credential("hayashi", "ldap-pw-Hayashi-01"), signal());
    expect(human).toEqual({ ...base("hayashi"), kind: "personal", state: "active" });
    const service = await checkCredential(userClient, credential("service_account_0a1b2c", "glpat-serviceAccountTok006"), signal());
    expect(service).toEqual({ ...base("service_account_0a1b2c"), kind: "service_account", state: "active" });
  });

  test("a non-administrator token cannot look for a custom-username deploy token: kind unknown, state not_found", async () => {
    gitlab.state.addUser({ username: "mori", password: "pw-mori-000001" });
    const userClient = new GitlabClient({ url: gitlab.url, token: new Secret(gitlab.state.issueApiToken("mori")) });
    const check = await checkCredential(userClient, credential("ci-puller", "gldt-customDeployToken"), signal());
    expect(check).toEqual({ ...base("ci-puller"), kind: "unknown", state: "not_found" });
  });

  test("a credential without a username (its helper failed) is unknown without asking GitLab", async () => {
    const requestsBefore = logLines.length;
    const { secret: _none, ...helperFailed } = credential("", "x");
    const check = await checkCredential(client, helperFailed, signal());
    expect(check).toEqual({ ...base(""), kind: "unknown", state: "unknown" });
    expect(logLines.slice(requestsBefore).filter((l) => l.includes('"msg":"gitlab request"'))).toEqual([]);
  });

  test("GitLab unreachable gives error.reason connection", async () => {
    const closed = await startFakeGitlab(signingKey(pem));
    const url = closed.url;
    await closed.close();
    const check = await checkCredential(new GitlabClient({ url, token: adminToken }), credential("someone", "pw-someone-0001"), signal());
    expect(check.kind).toBe("unknown");
    expect(check.state).toBe("unknown");
    expect(check.error?.reason).toBe("connection");
  });

  test("an aborted check gives error.reason timeout", async () => {
    const check = await checkCredential(client, credential("someone", "pw-someone-0001"), AbortSignal.abort());
    expect(check.state).toBe("unknown");
    expect(check.error?.reason).toBe("timeout");
  });
});

describe("secrets", () => {
  test("neither a credential's secret nor the admin token appears in results, errors or logs", async () => {
    const secrets = ["glpat-leakCheckPersonal0001", "ldap-pw-leakCheck-2026", adminToken.reveal(), "glpat-leakCheckBadAdmin01"];
    gitlab.state.addUser({ username: "leak-pat", password: secrets[0] ?? "", isAccessToken: true, expiresAt: "2027-01-01" });
    gitlab.state.addUser({ username: "leak-ldap", password: secrets[1] ?? "", identities: LDAP("leak-ldap") });
    const lines: string[] = [];
    const logger = createLogger("debug", (line) => lines.push(line));
    const logged = new GitlabClient({ url: gitlab.url, token: adminToken, logger });
    const badAdmin = new GitlabClient({ url: gitlab.url, token: new Secret(secrets[3]!), logger });
    const results = [
      await checkCredential(logged, credential("leak-pat", secrets[0]!), signal(), logger),
      await checkCredential(logged, credential("leak-ldap", secrets[1]!), signal(), logger),
      await checkCredential(badAdmin, credential("leak-pat", secrets[0]!), signal(), logger),
    ];
    expect(results.map((r) => r.state)).toEqual(["active", "active", "unknown"]);
    expect(results[2]?.error?.reason).toBe("unauthorized");
    expect(lines.filter((l) => l.includes('"msg":"credential checked"'))).toHaveLength(3);
    const output = JSON.stringify(results) + lines.join("") + logLines.join("");
    for (const secret of secrets) {
      expect(output).not.toContain(secret);
      expect(output).not.toContain(Buffer.from(secret).toString("base64"));
    }
  });
});
