import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A user on the fake GitLab, created through its test control endpoint. */
export async function createGitlabUser(
  gitlabUrl: string,
  spec: {
    username?: string;
    password?: string;
    state?: string;
    bot?: boolean;
    deployToken?: boolean;
    expiresAt?: string;
    actions?: string[];
  },
): Promise<{ username: string; password: string }> {
  const username = spec.username ?? `user-${randomBytes(4).toString("hex")}`;
  const password = spec.password ?? `pw-${randomBytes(12).toString("hex")}`;
  const res = await fetch(`${gitlabUrl}/-/test/users`, {
    method: "POST",
    body: JSON.stringify({ ...spec, username, password }),
    signal: AbortSignal.timeout(5000),
  });
  if (res.status !== 201) throw new Error(`create user ${username}: HTTP ${res.status} ${await res.text()}`);
  return { username, password };
}

export async function setGitlabUserState(gitlabUrl: string, username: string, state: string): Promise<void> {
  const res = await fetch(`${gitlabUrl}/-/test/users/${encodeURIComponent(username)}/state`, {
    method: "POST",
    body: JSON.stringify({ state }),
    signal: AbortSignal.timeout(5000),
  });
  if (res.status !== 200) throw new Error(`set state of ${username}: HTTP ${res.status}`);
}

export async function createApiToken(gitlabUrl: string, username: string): Promise<string> {
  const res = await fetch(`${gitlabUrl}/-/test/tokens`, {
    method: "POST",
    body: JSON.stringify({ username }),
    signal: AbortSignal.timeout(5000),
  });
  return ((await res.json()) as { token: string }).token;
}

/** A Docker config.json as `docker login` writes it, with `auths[registry].auth`. */
export function writeDockerConfig(dir: string, auths: Record<string, { username: string; password: string }>): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "config.json");
  const entries = Object.fromEntries(
    Object.entries(auths).map(([registry, c]) => [registry, { auth: Buffer.from(`${c.username}:${c.password}`).toString("base64") }]),
  );
  writeFileSync(file, `${JSON.stringify({ auths: entries }, null, "\t")}\n`);
  return file;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `ci-prober-${prefix}-`));
}
