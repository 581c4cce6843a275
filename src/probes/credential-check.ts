import { kindFromUsername } from "../credentials/kind.js";
import { oneLine } from "../errors.js";
import type { GitlabClient } from "../gitlab/client.js";
import {
  expiryEpochSeconds,
  findDeployTokens,
  findUser,
  getUser,
  lookupToken,
  type DeployToken,
  type GitlabUser,
  type TokenLookup,
} from "../gitlab/users.js";
import { silentLogger, type Logger } from "../log.js";
import { HttpStatusError, type Reason } from "../reasons.js";
import type { Credential, CredentialKind } from "../types.js";
import { classify } from "./classify.js";

/** Who stands behind one credential, and whether that can stop working (SPEC.md, Probes: credential checks). */
export interface CredentialCheck {
  runner: string;
  registry: string;
  username: string;
  kind: CredentialKind;
  /**
   * The owner's state as the Users API names it (active, blocked, ldap_blocked,
   * deactivated, banned, blocked_pending_approval, …), else the token's own
   * (revoked, expired), else unknown (nothing to ask, or asking failed) or
   * not_found (GitLab has no such user or deploy token).
   */
  state: string;
  /** When the token stops working, epoch seconds; absent when it never expires or GitLab cannot tell. */
  expiresAt?: number;
  error?: { reason: Reason; message: string };
}

type Finding = Omit<CredentialCheck, "runner" | "registry" | "username">;

/**
 * Check one credential against GitLab: its kind (from the username's form,
 * then the Users API), its owner's state, and its token's expiry and
 * revocation where GitLab can tell. `client` carries the administrator token
 * the checks read the Users and deploy token APIs with. Never throws: a
 * failure is classified into `error`.
 */
export async function checkCredential(
  client: GitlabClient,
  credential: Credential,
  signal: AbortSignal,
  logger: Logger = silentLogger,
): Promise<CredentialCheck> {
  const base = { runner: credential.runner, registry: credential.registry, username: credential.username };
  let finding: Finding;
  try {
    finding = await inspect(client, credential, signal);
  } catch (err) {
    finding = { kind: kindFromUsername(credential.username), state: "unknown", error: describe(err, signal) };
  }
  const check = { ...base, ...finding };
  logger.debug({ ...base, kind: check.kind, state: check.state, reason: check.error?.reason }, "credential checked");
  return check;
}

async function inspect(client: GitlabClient, credential: Credential, signal: AbortSignal): Promise<Finding> {
  const { username } = credential;
  // No username (a helper that failed): `GET /users?username=` would list everyone.
  if (username === "") return { kind: "unknown", state: "unknown" };
  // "unknown" from the form means only the Users API can tell.
  const formKind = kindFromUsername(username);
  // A job token lives as long as its job, and GitLab has no API that describes one.
  if (formKind === "job_token") return { kind: "job_token", state: "unknown" };
  if (formKind === "deploy_token") {
    return deployTokenFinding(await findDeployTokens(client, username, signal)) ?? { kind: "deploy_token", state: "not_found" };
  }
  const named = await findUser(client, username, signal);
  if (!named && formKind === "unknown") {
    const custom = await customDeployToken(client, username, signal);
    if (custom) return custom;
  }
  return ownerFinding(client, credential, named, formKind, signal);
}

/**
 * The kind the Users API tells. GitLab's REST entities carry `bot` but not
 * `user_type`, and service accounts are bots there too; GitLab names them
 * service_account_… (instance) and service_account_group_N_… (group).
 */
function kindFromUser(user: GitlabUser): CredentialKind {
  if (user.bot === undefined) return "unknown";
  if (!user.bot) return "personal";
  if (user.user_type === "service_account" || /^service_account_/.test(user.username)) return "service_account";
  return "bot";
}

/**
 * The owner's facts merged with the token's. GitLab does not evaluate the
 * username of a registry login made with an access token
 * (user/profile/personal_access_tokens.md), so when the token names another
 * user (or the config holds a name GitLab lacks, like `oauth2`) the token's
 * own user is the owner.
 */
async function ownerFinding(
  client: GitlabClient,
  credential: Credential,
  named: GitlabUser | undefined,
  formKind: CredentialKind,
  signal: AbortSignal,
): Promise<Finding> {
  const kindOf = (user: GitlabUser) => (formKind === "unknown" ? kindFromUser(user) : formKind);
  let lookup: TokenLookup;
  try {
    lookup = await askAboutSecret(client, credential, named ? kindOf(named) : formKind, signal);
  } catch (err) {
    // Only the token's facts are missing; the named user's state is known.
    const known = named ? { kind: kindOf(named), state: named.state } : { kind: formKind, state: "unknown" };
    return { ...known, error: describe(err, signal) };
  }
  const owner = lookup.kind === "token" && lookup.token.user_id !== named?.id ? await getUser(client, lookup.token.user_id, signal) : named;
  if (!owner) return { kind: formKind, state: lookup.kind === "refused" ? lookup.state : "not_found" };
  return withToken({ kind: kindOf(owner), state: owner.state }, lookup);
}

async function askAboutSecret(
  client: GitlabClient,
  credential: Credential,
  kind: CredentialKind,
  signal: AbortSignal,
): Promise<TokenLookup> {
  const secret = credential.secret;
  if (!secret || !mayAskAboutSecret(kind, secret.reveal())) return { kind: "none" };
  return lookupToken(client, secret, signal);
}

/**
 * Whether the secret may be sent to GitLab as PRIVATE-TOKEN to learn its
 * expiry. Bots and service accounts sign in only with access tokens. A human's
 * secret is sent only when it has the form of a GitLab access token (`glpat-`,
 * possibly behind an instance prefix): a password — an LDAP one, or one for
 * another registry that happens to share a GitLab username — never leaves for
 * an API that would only answer 401. A human's token without the prefix (made
 * before GitLab 14.5) goes unasked: its owner's state is still checked.
 */
function mayAskAboutSecret(kind: CredentialKind, secret: string): boolean {
  return kind === "bot" || kind === "service_account" || secret.includes("glpat-");
}

/** Merge what the token says about itself into the owner's facts. */
function withToken(owner: Finding, lookup: TokenLookup): Finding {
  if (lookup.kind === "none") return owner;
  // A blocked owner explains more than its token: every token of that user stops at once.
  const ownerActive = owner.state === "active";
  if (lookup.kind === "refused") return ownerActive ? { ...owner, state: lookup.state } : owner;
  const { token } = lookup;
  const tokenState = token.revoked ? "revoked" : token.active ? "active" : "expired";
  const expiresAt = token.expires_at === null ? undefined : expiryEpochSeconds(token.expires_at);
  return { ...owner, state: ownerActive ? tokenState : owner.state, ...(expiresAt !== undefined ? { expiresAt } : {}) };
}

/**
 * A deploy token's facts. Tokens of different projects may share a custom
 * username; the credential may be any of them, so an active one is preferred.
 */
function deployTokenFinding(tokens: DeployToken[]): Finding | undefined {
  const token = tokens.find((t) => !t.revoked && !t.expired) ?? tokens[0];
  if (!token) return undefined;
  const state = token.revoked ? "revoked" : token.expired ? "expired" : "active";
  const expiresAt = token.expires_at === null ? undefined : expiryEpochSeconds(token.expires_at);
  return { kind: "deploy_token", state, ...(expiresAt !== undefined ? { expiresAt } : {}) };
}

/** A deploy token with a custom username. Listing them takes an administrator; without one the answer is "no user". */
async function customDeployToken(client: GitlabClient, username: string, signal: AbortSignal): Promise<Finding | undefined> {
  try {
    return deployTokenFinding(await findDeployTokens(client, username, signal));
  } catch (err) {
    if (err instanceof HttpStatusError && err.status === 403) return undefined;
    throw err;
  }
}

function describe(err: unknown, signal: AbortSignal): { reason: Reason; message: string } {
  return { reason: classify(err, signal), message: oneLine(err) };
}
