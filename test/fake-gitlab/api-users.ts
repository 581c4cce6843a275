import type { IncomingMessage, ServerResponse } from "node:http";
import type { FakeUser, GitlabState } from "./state.js";

/**
 * The fake GitLab's Users, personal access token and deploy token API, field for
 * field as GitLab v4 answers (doc/api/users.md, personal_access_tokens.md,
 * deploy_tokens.md; entities in lib/api/entities/user_basic.rb, user_with_admin.rb,
 * personal_access_token.rb, deploy_token.rb):
 *
 *   GET /api/v4/users?username=X           UserBasic for everyone, UserWithAdmin for an administrator
 *   GET /api/v4/users/:id                  User (has `bot`) / UserWithAdmin
 *   GET /api/v4/personal_access_tokens/self  the token sent as PRIVATE-TOKEN describes itself
 *   GET /api/v4/deploy_tokens              every deploy token of the instance, administrators only
 *
 * Returns false for any other path so api.ts can try its other routes.
 */
export function handleUsersApi(state: GitlabState, req: IncomingMessage, res: ServerResponse, url: URL, _body: string): boolean {
  const path = url.pathname.slice("/api/v4".length);
  if (req.method !== "GET") return false;
  if (path === "/personal_access_tokens/self") {
    tokenSelf(state, req, res);
    return true;
  }
  const userId = /^\/users\/(\d+)$/.exec(path)?.[1];
  if (path !== "/users" && path !== "/deploy_tokens" && userId === undefined) return false;
  const caller = apiCaller(state, req, res);
  if (!caller) return true;
  if (path === "/users") listUsers(state, caller, res, url);
  else if (path === "/deploy_tokens") listDeployTokens(state, caller, res, url);
  else getUser(state, caller, res, Number(userId));
  return true;
}

function send(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(value));
}

/** GitLab's own texts for a caller whose account cannot use the API (lib/gitlab/auth/user_access_denied_reason.rb). */
function deniedMessage(user: FakeUser): string | undefined {
  switch (user.state) {
    case "active":
      return undefined;
    case "deactivated":
      return "403 Forbidden - Your account has been deactivated by your administrator. Please log back in from a web browser to reactivate your account at http://127.0.0.1";
    case "blocked_pending_approval":
      return "403 Forbidden - Your account is pending approval from your administrator and hence blocked.";
    default:
      return "403 Forbidden - Your account has been blocked.";
  }
}

/** The user a PRIVATE-TOKEN from POST /-/test/tokens acts as; otherwise answers 401/403 and returns undefined. */
function apiCaller(state: GitlabState, req: IncomingMessage, res: ServerResponse): FakeUser | undefined {
  const token = req.headers["private-token"];
  const username = typeof token === "string" ? state.apiTokens.get(token) : undefined;
  const user = username === undefined ? undefined : state.users.get(username);
  if (!user) {
    send(res, 401, { message: "401 Unauthorized" });
    return undefined;
  }
  const denied = deniedMessage(user);
  if (denied) {
    send(res, 403, { message: denied });
    return undefined;
  }
  return user;
}

function webUrl(user: FakeUser): string {
  return `http://127.0.0.1/${user.username}`;
}

/** Entities::UserBasic: what any signed-in user sees in a list. */
function userBasic(user: FakeUser): Record<string, unknown> {
  return {
    id: user.id,
    username: user.username,
    name: user.name,
    state: user.state,
    locked: false,
    avatar_url: null,
    web_url: webUrl(user),
  };
}

/** Entities::User: UserBasic plus the profile, and `bot`. */
function userEntity(user: FakeUser): Record<string, unknown> {
  return {
    ...userBasic(user),
    created_at: user.createdAt,
    bio: "",
    location: "",
    public_email: null,
    skype: "",
    linkedin: "",
    twitter: "",
    discord: "",
    website_url: "",
    organization: "",
    job_title: "",
    pronouns: null,
    bot: user.bot,
    work_information: null,
    followers: 0,
    following: 0,
    local_time: null,
  };
}

/** Entities::UserWithAdmin: what an administrator sees. */
function userWithAdmin(user: FakeUser): Record<string, unknown> {
  return {
    ...userEntity(user),
    last_sign_in_at: null,
    confirmed_at: user.createdAt,
    last_activity_on: user.lastActivityOn,
    email: `${user.username}@example.invalid`,
    theme_id: 1,
    color_scheme_id: 1,
    projects_limit: 100000,
    current_sign_in_at: null,
    identities: user.identities,
    can_create_group: !user.bot,
    can_create_project: !user.bot,
    two_factor_enabled: false,
    external: user.external,
    private_profile: false,
    commit_email: `${user.username}@example.invalid`,
    is_admin: user.isAdmin,
    note: null,
    namespace_id: user.id,
    created_by: null,
    email_reset_offered_at: null,
    current_sign_in_ip: null,
    last_sign_in_ip: null,
  };
}

/** Deploy tokens are not users: the Users API never lists them. */
function apiUsers(state: GitlabState): FakeUser[] {
  return [...state.users.values()].filter((u) => !u.deployToken);
}

function listUsers(state: GitlabState, caller: FakeUser, res: ServerResponse, url: URL): void {
  const username = url.searchParams.get("username");
  // GitLab matches ?username= exactly but case-insensitively.
  const users = apiUsers(state).filter((u) => username === null || u.username.toLowerCase() === username.toLowerCase());
  send(res, 200, users.map(caller.isAdmin ? userWithAdmin : userBasic));
}

function getUser(state: GitlabState, caller: FakeUser, res: ServerResponse, id: number): void {
  const user = apiUsers(state).find((u) => u.id === id);
  if (!user) {
    send(res, 404, { message: "404 User Not Found" });
    return;
  }
  send(res, 200, caller.isAdmin ? userWithAdmin(user) : userEntity(user));
}

/** A date in the past (GitLab: a token expires at 00:00 UTC of its expires_at date). */
function isExpired(user: FakeUser): boolean {
  return user.expiresAt !== null && Date.parse(user.expiresAt) <= Date.now();
}

/** Rack::OAuth2's answer to a token it will not accept, as GitLab's API guard sends it. */
function invalidToken(res: ServerResponse, description: string): void {
  send(
    res,
    401,
    { error: "invalid_token", error_description: description },
    {
      "www-authenticate": `Bearer realm="", error="invalid_token", error_description="${description}"`,
    },
  );
}

/** Entities::PersonalAccessToken: expires_at is a date, "YYYY-MM-DD". */
function tokenEntity(user: FakeUser): Record<string, unknown> {
  return {
    id: user.tokenId,
    name: `${user.username} token`,
    revoked: user.revoked,
    created_at: user.createdAt,
    description: null,
    scopes: user.scopes,
    user_id: user.id,
    last_used_at: null,
    active: !user.revoked && !isExpired(user),
    expires_at: user.expiresAt === null ? null : new Date(Date.parse(user.expiresAt)).toISOString().slice(0, 10),
    last_used_ips: [],
  };
}

/**
 * Any access token may describe itself, whatever its scopes. A revoked or expired
 * one is refused by the API guard before the endpoint runs; a token of a blocked
 * user is refused with the account's state; anything that is not a token (a
 * sign-in password, a deploy token) is 401.
 */
function tokenSelf(state: GitlabState, req: IncomingMessage, res: ServerResponse): void {
  const header = req.headers["private-token"];
  const token = typeof header === "string" ? header : "";
  const apiUser = state.apiTokens.get(token);
  const user = apiUser === undefined ? state.findByAccessToken(token) : state.users.get(apiUser);
  // Tests assert which secrets reached the API at all; never the secret itself.
  state.log.push({ at: Date.now(), event: "token_self", username: user?.username ?? "" });
  if (!user) {
    send(res, 401, { message: "401 Unauthorized" });
    return;
  }
  if (user.isAccessToken && user.password === token) {
    if (user.revoked) return invalidToken(res, "Token was revoked. You have to re-authorize from the user.");
    if (isExpired(user)) return invalidToken(res, "Token is expired. You can either do re-authorization or token refresh.");
  }
  const denied = deniedMessage(user);
  if (denied) {
    send(res, 403, { message: denied });
    return;
  }
  if (apiUser !== undefined) {
    // A test-control API token: an `api` token that never expires.
    send(res, 200, {
      ...tokenEntity(user),
      id: 1_000_000 + user.id,
      name: "api",
      scopes: ["api"],
      revoked: false,
      active: true,
      expires_at: null,
    });
    return;
  }
  send(res, 200, tokenEntity(user));
}

/** Entities::DeployToken: expires_at is a datetime. */
function deployTokenEntity(user: FakeUser): Record<string, unknown> {
  return {
    id: user.tokenId,
    name: user.name,
    username: user.username,
    expires_at: user.expiresAt === null ? null : new Date(Date.parse(user.expiresAt)).toISOString(),
    revoked: user.revoked,
    expired: isExpired(user),
    scopes: user.scopes,
  };
}

function listDeployTokens(state: GitlabState, caller: FakeUser, res: ServerResponse, url: URL): void {
  if (!caller.isAdmin) {
    send(res, 403, { message: "403 Forbidden" });
    return;
  }
  const activeOnly = url.searchParams.get("active") === "true";
  const tokens = [...state.users.values()].filter((u) => u.deployToken && (!activeOnly || (!u.revoked && !isExpired(u))));
  // GitLab paginates every list: page and per_page (default 20, at most 100).
  const perPage = Math.min(100, Math.max(1, Number(url.searchParams.get("per_page") ?? "20") || 20));
  const page = Math.max(1, Number(url.searchParams.get("page") ?? "1") || 1);
  const slice = tokens.slice((page - 1) * perPage, page * perPage);
  const totalPages = Math.max(1, Math.ceil(tokens.length / perPage));
  send(res, 200, slice.map(deployTokenEntity), {
    "x-page": String(page),
    "x-per-page": String(perPage),
    "x-total": String(tokens.length),
    "x-total-pages": String(totalPages),
    "x-next-page": page < totalPages ? String(page + 1) : "",
  });
}
