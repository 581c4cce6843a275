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
}

export interface NewUser {
  username: string;
  password?: string;
  name?: string;
  state?: UserState;
  bot?: boolean;
  deployToken?: boolean;
  actions?: string[];
  expiresAt?: string | null;
}

/** The fake GitLab's data, shared by /jwt/auth, /api/v4 and the test control endpoints. */
export class GitlabState {
  readonly users = new Map<string, FakeUser>();
  /** PRIVATE-TOKEN values the API accepts, mapped to the user they act as. */
  readonly apiTokens = new Map<string, string>();
  /** What happened, for tests that assert on it (never a secret). */
  readonly log: { at: number; event: string; username: string }[] = [];
  #nextUserId = 2;

  constructor() {
    this.addUser({ username: "root", password: "root-password-not-secret", name: "Administrator" });
  }

  addUser(spec: NewUser): FakeUser {
    const existing = this.users.get(spec.username);
    if (existing) throw new Error(`user ${spec.username} already exists`);
    const user: FakeUser = {
      id: spec.deployToken ? 0 : this.#nextUserId++,
      username: spec.username,
      name: spec.name ?? spec.username,
      password: spec.password ?? `pw-${randomBytes(12).toString("hex")}`,
      state: spec.state ?? "active",
      bot: spec.bot ?? /^(project|group)_\d+_bot/.test(spec.username),
      deployToken: spec.deployToken ?? /^gitlab\+deploy-token-\d+$/.test(spec.username),
      actions: spec.actions ?? ["pull", "push"],
      expiresAt: spec.expiresAt ?? null,
      revoked: false,
      createdAt: new Date().toISOString(),
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

  issueApiToken(username: string): string {
    const token = `glpat-${randomBytes(16).toString("hex")}`;
    this.apiTokens.set(token, username);
    return token;
  }
}
