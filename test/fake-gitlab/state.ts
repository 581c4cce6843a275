import { randomBytes } from "node:crypto";

/** GitLab user states as the Users API reports them. */
export type UserState = "active" | "blocked" | "ldap_blocked" | "deactivated" | "banned" | "blocked_pending_approval";

/** A GitLab user of the fake instance. Deploy tokens are users here too, with `deployToken: true`. */
export interface FakeUser {
  id: number;
  username: string;
  name: string;
  password: string;
  state: UserState;
  bot: boolean;
  /** A deploy token: it authenticates at /jwt/auth but has no Users API entry. */
  deployToken: boolean;
  /** Registry actions /jwt/auth grants this user: "pull,push" by default. */
  actions: string[];
  /** Expiry of the token used as this user's password (personal/project access tokens, deploy tokens), ISO date. */
  expiresAt: string | null;
  revoked: boolean;
  createdAt: string;
  /** Users API facts (api-users.ts): an administrator, an external user, sign-in identities (LDAP: provider "ldapmain"). */
  isAdmin: boolean;
  external: boolean;
  identities: { provider: string; extern_uid: string }[];
  /** GitLab's user_type: project and group access token users are "project_bot"; service accounts are bots too. */
  userType: FakeUserType;
  lastActivityOn: string | null;
  /**
   * Set when the password is an access token (personal, project or group) rather than a
   * sign-in password: /personal_access_tokens/self then answers for it. Deploy tokens have
   * their id here too (their /deploy_tokens entry), with `isAccessToken` false.
   */
  tokenId: number | null;
  isAccessToken: boolean;
  scopes: string[];
}

export type FakeUserType = "human" | "project_bot" | "service_account";

export interface NewUser {
  username: string;
  password?: string;
  name?: string;
  state?: UserState;
  bot?: boolean;
  deployToken?: boolean;
  actions?: string[];
  expiresAt?: string | null;
  isAdmin?: boolean;
  external?: boolean;
  identities?: { provider: string; extern_uid: string }[];
  userType?: FakeUserType;
  lastActivityOn?: string | null;
  /** The password is an access token: true by default for bots and service accounts. */
  isAccessToken?: boolean;
  scopes?: string[];
}

/** The fake GitLab's data, shared by /jwt/auth, /api/v4 and the test control endpoints. */
export class GitlabState {
  readonly users = new Map<string, FakeUser>();
  /** PRIVATE-TOKEN values the API accepts, mapped to the user they act as. */
  readonly apiTokens = new Map<string, string>();
  /** What happened, for tests that assert on it (never a secret). */
  readonly log: { at: number; event: string; username: string }[] = [];
  /** Every request the fake answered (method and path, never a header), for tests that count what ci-prober sends. */
  readonly requests: { at: number; method: string; path: string; status?: number }[] = [];
  #nextUserId = 2;
  #nextTokenId = 1;

  constructor() {
    this.addUser({ username: "root", password: "root-password-not-secret", name: "Administrator", isAdmin: true });
  }

  addUser(spec: NewUser): FakeUser {
    const existing = this.users.get(spec.username);
    if (existing) throw new Error(`user ${spec.username} already exists`);
    const bot = spec.bot ?? (spec.userType === "service_account" || /^(project|group)_\d+_bot/.test(spec.username));
    const deployToken = spec.deployToken ?? /^gitlab\+deploy-token-\d+$/.test(spec.username);
    const actions = spec.actions ?? ["pull", "push"];
    const isAccessToken = !deployToken && (spec.isAccessToken ?? bot);
    const user: FakeUser = {
      id: deployToken ? 0 : this.#nextUserId++,
      username: spec.username,
      name: spec.name ?? spec.username,
      password: spec.password ?? `pw-${randomBytes(12).toString("hex")}`,
      state: spec.state ?? "active",
      bot,
      deployToken,
      actions,
      expiresAt: spec.expiresAt ?? null,
      revoked: false,
      createdAt: new Date().toISOString(),
      isAdmin: spec.isAdmin ?? false,
      external: spec.external ?? false,
      identities: spec.identities ?? [],
      userType: spec.userType ?? (bot ? "project_bot" : "human"),
      lastActivityOn: spec.lastActivityOn ?? null,
      tokenId: deployToken ? deployTokenId(spec.username, () => this.#nextTokenId++) : isAccessToken ? this.#nextTokenId++ : null,
      isAccessToken,
      scopes: spec.scopes ?? actions.map((a) => (a === "push" ? "write_registry" : "read_registry")),
    };
    this.users.set(user.username, user);
    return user;
  }

  setState(username: string, state: UserState): FakeUser {
    const user = this.users.get(username);
    if (!user) throw new Error(`no user ${username}`);
    user.state = state;
    return user;
  }

  /** The user a Basic credential authenticates as, or undefined (wrong password, blocked, revoked, expired). */
  authenticate(username: string, password: string): FakeUser | undefined {
    const user = this.users.get(username);
    if (!user || user.password !== password) return undefined;
    if (user.state !== "active" || user.revoked) return undefined;
    if (user.expiresAt !== null && Date.parse(user.expiresAt) < Date.now()) return undefined;
    return user;
  }

  /** Revoke the token a user's password is (access token or deploy token). */
  revoke(username: string): FakeUser {
    const user = this.users.get(username);
    if (!user) throw new Error(`no user ${username}`);
    user.revoked = true;
    return user;
  }

  /** The user whose password is this access token (personal, project or group), revoked and expired ones included. */
  findByAccessToken(token: string): FakeUser | undefined {
    for (const user of this.users.values()) {
      if (user.isAccessToken && user.password === token) return user;
    }
    return undefined;
  }

  issueApiToken(username: string): string {
    const token = `glpat-${randomBytes(16).toString("hex")}`;
    this.apiTokens.set(token, username);
    return token;
  }
}

/** GitLab names a deploy token gitlab+deploy-token-{id} unless given a username. */
function deployTokenId(username: string, next: () => number): number {
  const match = /^gitlab\+deploy-token-(\d+)$/.exec(username);
  return match?.[1] ? Number(match[1]) : next();
}
