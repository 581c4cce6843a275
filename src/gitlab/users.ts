import { HttpStatusError } from "../reasons.js";
import type { Secret } from "../secret.js";
import type { GitlabClient } from "./client.js";
import {
  deployTokenListSchema,
  gitlabUserListSchema,
  gitlabUserSchema,
  personalAccessTokenSchema,
  type DeployToken,
  type GitlabUser,
  type PersonalAccessToken,
} from "./users-schema.js";

export type { DeployToken, GitlabUser, PersonalAccessToken };

/**
 * The GitLab user with this username, or undefined when GitLab has none.
 * `GET /users?username=` matches exactly but case-insensitively. A
 * non-administrator's list leaves `bot` out, so then the single-user entity,
 * which has it, is fetched too.
 */
export async function findUser(client: GitlabClient, username: string, signal: AbortSignal): Promise<GitlabUser | undefined> {
  const users = await client.request("GET", "/users", { signal, schema: gitlabUserListSchema, query: { username }, cache: true });
  const user = users.find((u) => u.username.toLowerCase() === username.toLowerCase());
  if (!user || user.bot !== undefined) return user;
  return (await getUser(client, user.id, signal)) ?? user;
}

/** The user with this id (`GET /users/:id`), or undefined when GitLab has none. */
export async function getUser(client: GitlabClient, id: number, signal: AbortSignal): Promise<GitlabUser | undefined> {
  try {
    return await client.request("GET", `/users/${id}`, { signal, schema: gitlabUserSchema, cache: true });
  } catch (err) {
    if (err instanceof HttpStatusError && err.status === 404) return undefined;
    throw err;
  }
}

/** What `GET /personal_access_tokens/self` tells about a secret sent as PRIVATE-TOKEN. */
export type TokenLookup =
  | { kind: "token"; token: PersonalAccessToken }
  /** GitLab knows the token and refuses it, and says why: the token's state, or its owner's. */
  | { kind: "refused"; state: RefusedState }
  /** Not an access token GitLab will describe: a sign-in password, a deploy token, an OAuth token. */
  | { kind: "none" };

export type RefusedState = "revoked" | "expired" | "blocked" | "deactivated" | "blocked_pending_approval";

/**
 * Ask GitLab about a secret by sending it as PRIVATE-TOKEN to
 * `/personal_access_tokens/self`, which any access token may call whatever its
 * scopes (personal, project and group access tokens). A revoked or expired
 * token is refused with 401 and an `error_description` that says which; a
 * token of a blocked or deactivated user with 403 and the account's text. Any
 * other 401 (a password), 403 (a missing scope) or a 400 (not a personal
 * access token) carries no token facts.
 */
export async function lookupToken(client: GitlabClient, secret: Secret, signal: AbortSignal): Promise<TokenLookup> {
  try {
    const token = await client.request("GET", "/personal_access_tokens/self", {
      signal,
      schema: personalAccessTokenSchema,
      token: secret,
      cache: true,
    });
    return { kind: "token", token };
  } catch (err) {
    if (!(err instanceof HttpStatusError) || ![400, 401, 403].includes(err.status)) throw err;
    // GitLab's text follows the endpoint in the message (the client takes error_description when there is no message).
    const state = refusal(err.status, err.message.slice(err.endpoint.length));
    return state ? { kind: "refused", state } : { kind: "none" };
  }
}

/**
 * Why GitLab refused a token, from its API guard's texts (lib/api/api_guard.rb:
 * "Token was revoked…", "Token is expired…") and its account texts
 * (lib/gitlab/auth/user_access_denied_reason.rb; ldap_blocked reads as blocked there).
 */
function refusal(status: number, said: string): RefusedState | undefined {
  if (status === 401 && /revoked/i.test(said)) return "revoked";
  if (status === 401 && /expired/i.test(said)) return "expired";
  if (status === 403 && /pending approval/i.test(said)) return "blocked_pending_approval";
  if (status === 403 && /deactivated/i.test(said)) return "deactivated";
  if (status === 403 && /blocked/i.test(said)) return "blocked";
  return undefined;
}

const DEPLOY_TOKENS_PER_PAGE = 100;
// 10 000 deploy tokens; an instance with more is not one this prober can list every round.
const DEPLOY_TOKENS_MAX_PAGES = 100;

/**
 * Every deploy token of the instance with this username (`GET /deploy_tokens`,
 * administrators only), page by page. A custom username may be shared by
 * tokens of different projects, so all matches are returned.
 */
export async function findDeployTokens(client: GitlabClient, username: string, signal: AbortSignal): Promise<DeployToken[]> {
  const found: DeployToken[] = [];
  for (let page = 1; page <= DEPLOY_TOKENS_MAX_PAGES; page++) {
    const tokens = await client.request("GET", "/deploy_tokens", {
      signal,
      schema: deployTokenListSchema,
      query: { per_page: DEPLOY_TOKENS_PER_PAGE, page },
      cache: true,
    });
    found.push(...tokens.filter((t) => t.username.toLowerCase() === username.toLowerCase()));
    if (tokens.length < DEPLOY_TOKENS_PER_PAGE) break;
  }
  return found;
}

/**
 * An `expires_at` as epoch seconds, or undefined when it cannot be read.
 * Access tokens give a date, and GitLab expires them at its start: "a token
 * with the expiration date of 2024-01-01 expires at 00:00:00 UTC on
 * 2024-01-01" (user/profile/personal_access_tokens.md). Deploy tokens give a
 * datetime, taken as written. (Date.parse reads a bare date as UTC midnight.)
 */
export function expiryEpochSeconds(expiresAt: string): number | undefined {
  const ms = Date.parse(expiresAt);
  return Number.isNaN(ms) ? undefined : Math.floor(ms / 1000);
}
