import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { GitlabClient } from "../../../src/gitlab/client.js";
import { expiryEpochSeconds, findDeployTokens, findUser, lookupToken } from "../../../src/gitlab/users.js";
import { Secret } from "../../../src/secret.js";
import { testSigningKey } from "../../helpers/gitlab.js";
import { startFakeGitlab, type FakeGitlab } from "../../fake-gitlab/server.js";

// The Users, personal access token and deploy token API as GitLab v4 answers
// them (the fake, field for field), and src/gitlab/users.ts reading them.

let gitlab: FakeGitlab;
let admin: GitlabClient;
let adminToken: string;
let userToken: string;

beforeAll(async () => {
  gitlab = await startFakeGitlab(testSigningKey());
  adminToken = gitlab.state.issueApiToken("root");
  gitlab.state.addUser({ username: "reader", password: "pw-reader-0001" });
  userToken = gitlab.state.issueApiToken("reader");
  admin = new GitlabClient({ url: gitlab.url, token: new Secret(adminToken) });
  gitlab.state.addUser({
    username: "tanaka",
    name: "Tanaka Taro",
    password: "ldap-pw-Tanaka-2026",
    identities: [{ provider: "ldapmain", extern_uid: "uid=tanaka,ou=people,dc=example,dc=jp" }],
    lastActivityOn: "2026-11-20",
  });
  gitlab.state.addUser({
    username: "project_42_bot_3f9a1c",
    password: "glpat-projectBotToken00042",
    expiresAt: "2027-03-31",
    actions: ["pull"],
  });
  gitlab.state.addUser({
    username: "gitlab+deploy-token-7",
    password: "gldt-deployToken7Secret",
    expiresAt: "2027-01-15T09:30:00.000Z",
    actions: ["pull"],
  });
});

afterAll(async () => {
  await gitlab.close();
});

function signal(): AbortSignal {
  return AbortSignal.timeout(10_000);
}

async function get(path: string, token: string): Promise<{ status: number; body: unknown; authenticate: string | null }> {
  const res = await fetch(`${gitlab.url}/api/v4${path}`, { headers: { "private-token": token }, signal: signal() });
  return { status: res.status, body: await res.json(), authenticate: res.headers.get("www-authenticate") };
}

describe("the fake's Users API", () => {
  test("a non-administrator's ?username= lookup gets UserBasic: state but no bot, identities or is_admin", async () => {
    const { status, body } = await get("/users?username=tanaka", userToken);
    expect(status).toBe(200);
    const id = gitlab.state.users.get("tanaka")?.id;
    expect(body).toEqual([
      { id, username: "tanaka", name: "Tanaka Taro", state: "active", locked: false, avatar_url: null, web_url: "http://127.0.0.1/tanaka" },
    ]);
  });

  test("an administrator's lookup gets UserWithAdmin: bot, identities, is_admin, external, last_activity_on", async () => {
    const { body } = await get("/users?username=tanaka", adminToken);
    expect(body).toMatchObject([
      {
        username: "tanaka",
        state: "active",
        bot: false,
        is_admin: false,
        external: false,
        last_activity_on: "2026-11-20",
        identities: [{ provider: "ldapmain", extern_uid: "uid=tanaka,ou=people,dc=example,dc=jp" }],
      },
    ]);
  });

  test("a token that is not an API token is 401 with GitLab's message", async () => {
    expect(await get("/users?username=tanaka", "glpat-notAnApiToken000000")).toEqual({
      status: 401,
      body: { message: "401 Unauthorized" },
      authenticate: null,
    });
  });

  test("an API token of a blocked user is 403 with GitLab's account text", async () => {
    gitlab.state.addUser({ username: "blocked-caller", password: "pw-blocked-0001", state: "blocked" });
    const token = gitlab.state.issueApiToken("blocked-caller");
    expect(await get("/users?username=tanaka", token)).toEqual({
      status: 403,
      body: { message: "403 Forbidden - Your account has been blocked." },
      authenticate: null,
    });
  });

  test("/deploy_tokens is 403 for a non-administrator", async () => {
    expect(await get("/deploy_tokens", userToken)).toEqual({ status: 403, body: { message: "403 Forbidden" }, authenticate: null });
  });

  test("/deploy_tokens gives an administrator each token's username, datetime expires_at, revoked and expired", async () => {
    const { body } = await get("/deploy_tokens", adminToken);
    expect(body).toEqual([
      {
        id: 7,
        name: "gitlab+deploy-token-7",
        username: "gitlab+deploy-token-7",
        expires_at: "2027-01-15T09:30:00.000Z",
        revoked: false,
        expired: false,
        scopes: ["read_registry"],
      },
    ]);
  });

  test("/personal_access_tokens/self describes the token sent, with a date expires_at", async () => {
    const bot = gitlab.state.users.get("project_42_bot_3f9a1c");
    const { status, body } = await get("/personal_access_tokens/self", "glpat-projectBotToken00042");
    expect(status).toBe(200);
    expect(body).toEqual({
      id: bot?.tokenId,
      name: "project_42_bot_3f9a1c token",
      revoked: false,
      created_at: bot?.createdAt,
      description: null,
      scopes: ["read_registry"],
      user_id: bot?.id,
      last_used_at: null,
      active: true,
      expires_at: "2027-03-31",
      last_used_ips: [],
    });
  });

  test("/personal_access_tokens/self refuses a revoked token with invalid_token and says why", async () => {
    gitlab.state.addUser({ username: "project_43_bot_00aa11", password: "glpat-revokedBotToken00043", expiresAt: "2027-03-31" });
    gitlab.state.revoke("project_43_bot_00aa11");
    expect(await get("/personal_access_tokens/self", "glpat-revokedBotToken00043")).toEqual({
      status: 401,
      body: { error: "invalid_token", error_description: "Token was revoked. You have to re-authorize from the user." },
      authenticate:
        'Bearer realm="", error="invalid_token", error_description="Token was revoked. You have to re-authorize from the user."',
    });
  });

  test("/personal_access_tokens/self answers a sign-in password with 401 Unauthorized", async () => {
    expect(await get("/personal_access_tokens/self", "ldap-pw-Tanaka-2026")).toEqual({
      status: 401,
      body: { message: "401 Unauthorized" },
      authenticate: null,
    });
  });
});

describe("src/gitlab/users.ts", () => {
  test("findUser matches the username case-insensitively", async () => {
    const user = await findUser(admin, "TANAKA", signal());
    expect(user).toMatchObject({ username: "tanaka", state: "active", bot: false });
  });

  test("findUser with a non-administrator token reads bot from GET /users/:id", async () => {
    const asUser = new GitlabClient({ url: gitlab.url, token: new Secret(userToken) });
    expect(await findUser(asUser, "project_42_bot_3f9a1c", signal())).toMatchObject({
      username: "project_42_bot_3f9a1c",
      bot: true,
      state: "active",
    });
    expect(await findUser(asUser, "tanaka", signal())).toMatchObject({ username: "tanaka", bot: false });
  });

  test("findUser finds no user for a deploy token or an unknown name", async () => {
    expect(await findUser(admin, "gitlab+deploy-token-7", signal())).toBeUndefined();
    expect(await findUser(admin, "nobody-here", signal())).toBeUndefined();
  });

  test("lookupToken tells a token's facts, a revoked token, an expired token, a password and a deactivated owner apart", async () => {
    gitlab.state.addUser({ username: "project_44_bot_expired", password: "glpat-expiredBotToken00044", expiresAt: "2020-01-01" });
    expect(await lookupToken(admin, new Secret("glpat-projectBotToken00042"), signal())).toMatchObject({
      kind: "token",
      token: { revoked: false, active: true, expires_at: "2027-03-31", scopes: ["read_registry"] },
    });
    expect(await lookupToken(admin, new Secret("glpat-revokedBotToken00043"), signal())).toEqual({ kind: "refused", state: "revoked" });
    expect(await lookupToken(admin, new Secret("glpat-expiredBotToken00044"), signal())).toEqual({ kind: "refused", state: "expired" });
    expect(await lookupToken(admin, new Secret("ldap-pw-Tanaka-2026"), signal())).toEqual({ kind: "none" });
    gitlab.state.addUser({ username: "project_45_bot_deact", password: "glpat-deactivatedBot00045", state: "deactivated" });
    expect(await lookupToken(admin, new Secret("glpat-deactivatedBot00045"), signal())).toEqual({ kind: "refused", state: "deactivated" });
  });

  test("findDeployTokens pages through more than one page of 100", async () => {
    for (let n = 100; n < 250; n++) gitlab.state.addUser({ username: `gitlab+deploy-token-${n}`, password: `gldt-bulk-${n}-secret` });
    const found = await findDeployTokens(admin, "gitlab+deploy-token-240", signal());
    expect(found.map((t) => t.id)).toEqual([240]);
  });

  test("expiryEpochSeconds reads a date as 00:00:00 UTC of that day and a datetime as written", () => {
    expect(expiryEpochSeconds("2024-01-01")).toBe(1704067200);
    expect(expiryEpochSeconds("2027-01-15T09:30:00.000Z")).toBe(1800005400);
    expect(expiryEpochSeconds("not a date")).toBeUndefined();
  });
});
