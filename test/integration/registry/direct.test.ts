import { describe, expect, inject, test } from "vitest";
import { directLogin, directPull } from "../../../src/probes/direct.js";
import { runProbe } from "../../../src/probes/run.js";
import type { ProbeResult } from "../../../src/types.js";
import { run } from "../../services/procs.js";
import { createGitlabUser, setGitlabUserState } from "../../helpers/fixtures.js";
import { passwordCredential, probeContext } from "../../helpers/registry.js";
import { expectLogLine } from "../../helpers/log.js";

const services = inject("services");
const ht = services.htpasswd;
const tok = services.token;
const ACCESS_DENIED = "HTTP Basic: Access denied";

/** Config + layer sizes of an image's manifest, read with skopeo (not our client). */
async function manifestBytes(image: string, creds: string): Promise<number> {
  const raw = await run("skopeo", ["inspect", "--raw", "--tls-verify=false", "--creds", creds, `docker://${image}`]);
  const m = JSON.parse(raw) as { config: { size: number }; layers: { size: number }[] };
  return m.config.size + m.layers.reduce((sum, l) => sum + l.size, 0);
}

/** Every text a probe result carries out of the process. */
function everyText(result: ProbeResult): string {
  return JSON.stringify(result);
}

let userSeq = 0;
function uniqueUser(prefix: string): { username: string; password: string } {
  userSeq += 1;
  return { username: `${prefix}-${process.pid}-${userSeq}`, password: `pw-${prefix}-${Math.random().toString(36).slice(2)}-secret` };
}

describe("direct login", () => {
  test("succeeds against the htpasswd registry with alice's password, with no secret in the log", async () => {
    const password = ht.users.alice ?? "";
    const ctx = probeContext({ target: ht.host, credential: passwordCredential(ht.host, "alice", password) });
    const result = await runProbe("login", ctx, directLogin);
    expect(result.success).toBe(true);
    expect(result.reason).toBeUndefined();
    expectLogLine(result.log, { includes: `GET http://${ht.host}/v2/ -> 401` });
    expectLogLine(result.log, { includes: "challenge basic realm=ci-prober-test" });
    expectLogLine(result.log, { includes: `GET http://${ht.host}/v2/ -> 200` });
    expect(everyText(result)).not.toContain(password);
    expect(everyText(result)).not.toContain(Buffer.from(`alice:${password}`).toString("base64"));
  });

  test("is unauthorized with a wrong password on the htpasswd registry", async () => {
    const ctx = probeContext({ target: ht.host, credential: passwordCredential(ht.host, "alice", "wrong-password-1234") });
    const result = await runProbe("login", ctx, directLogin);
    expect(result.success).toBe(false);
    expect(result.reason).toBe("unauthorized");
    expect(result.error).toBe(`GET http://${ht.host}/v2/: HTTP 401: authentication required`);
    expect(everyText(result)).not.toContain("wrong-password-1234");
  });

  test("is credential_missing when the runner holds no credential for a registry that demands one", async () => {
    const result = await runProbe("login", probeContext({ target: ht.host }), directLogin);
    expect(result.reason).toBe("credential_missing");
    expect(result.error).toBe(`no credential for ${ht.host}, and it demands one (basic challenge)`);
  });

  test("succeeds against the token registry: a token without scope from GitLab's /jwt/auth, then GET /v2/ with it", async () => {
    const user = uniqueUser("login-ok");
    await createGitlabUser(services.gitlab.url, { ...user, actions: ["pull"] });
    const ctx = probeContext({ target: tok.host, credential: passwordCredential(tok.host, user.username, user.password) });
    const result = await runProbe("login", ctx, directLogin);
    expect(result.success).toBe(true);
    expectLogLine(result.log, { includes: `challenge bearer realm=${services.gitlab.url}/jwt/auth service=container_registry scope=-` });
    expectLogLine(result.log, { includes: `token GET ${services.gitlab.url}/jwt/auth -> 200` });
    expectLogLine(result.log, { includes: `GET http://${tok.host}/v2/ -> 200` });
    expect(everyText(result)).not.toContain(user.password);
  });

  test("is unauthorized for a blocked GitLab user, with GitLab's Access denied text and no secret", async () => {
    const user = uniqueUser("blocked");
    await createGitlabUser(services.gitlab.url, { ...user, actions: ["pull"] });
    await setGitlabUserState(services.gitlab.url, user.username, "blocked");
    const ctx = probeContext({ target: tok.host, credential: passwordCredential(tok.host, user.username, user.password) });
    const result = await runProbe("login", ctx, directLogin);
    expect(result.reason).toBe("unauthorized");
    expect(result.error?.startsWith(`GET ${services.gitlab.url}/jwt/auth: HTTP 401: ${ACCESS_DENIED}.`)).toBe(true);
    expectLogLine(result.log, { includes: `token GET ${services.gitlab.url}/jwt/auth -> 401` });
    expect(everyText(result)).not.toContain(user.password);
  });

  test("succeeds with an identity token through the OAuth2 refresh-token grant", async () => {
    const user = uniqueUser("idtoken");
    await createGitlabUser(services.gitlab.url, { ...user, actions: ["pull"] });
    const ctx = probeContext({
      target: tok.host,
      credential: passwordCredential(tok.host, user.username, user.password, "identity_token"),
    });
    const result = await runProbe("login", ctx, directLogin);
    expect(result.success).toBe(true);
    expectLogLine(result.log, { includes: `token POST ${services.gitlab.url}/jwt/auth -> 200` });
    expect(everyText(result)).not.toContain(user.password);
  });

  test("is unauthorized with a revoked identity token, with no secret in the result", async () => {
    const user = uniqueUser("idtoken-bad");
    await createGitlabUser(services.gitlab.url, { ...user, actions: ["pull"] });
    const ctx = probeContext({
      target: tok.host,
      credential: passwordCredential(tok.host, user.username, "not-the-token-9f8e7d", "identity_token"),
    });
    const result = await runProbe("login", ctx, directLogin);
    expect(result.reason).toBe("unauthorized");
    expect(result.error?.startsWith(`POST ${services.gitlab.url}/jwt/auth: HTTP 401: ${ACCESS_DENIED}.`)).toBe(true);
    expect(everyText(result)).not.toContain("not-the-token-9f8e7d");
  });

  test("gives a credential's own failure reason when it could not be read", async () => {
    const { secret: _unread, ...unread } = passwordCredential(ht.host, "alice", "x");
    const credential = { ...unread, error: { reason: "helper_failed" as const, message: "docker-credential-pass exited 1" } };
    const result = await runProbe("login", probeContext({ target: ht.host, credential }), directLogin);
    expect(result.reason).toBe("helper_failed");
    expect(result.error).toBe(`credential for ${ht.host} from ${credential.source}: docker-credential-pass exited 1`);
  });
});

describe("direct pull", () => {
  test("fetches and verifies ci/canary from the htpasswd registry: bytes are config + layers of its manifest", async () => {
    const password = ht.users.alice ?? "";
    const expected = await manifestBytes(ht.image, `alice:${password}`);
    const ctx = probeContext({ target: ht.image, credential: passwordCredential(ht.host, "alice", password) });
    const result = await runProbe("pull", ctx, directPull);
    expect(result.success).toBe(true);
    expect(result.bytes).toBe(expected);
    expectLogLine(result.log, /manifest application\/vnd\.docker\.distribution\.manifest\.v2\+json sha256:[0-9a-f]{64} /);
    expect(result.log.filter((l) => / blob sha256:[0-9a-f]{64} \d+ bytes verified$/.test(l))).toHaveLength(2);
    expect(everyText(result)).not.toContain(password);
  });

  test("fetches and verifies ci/canary from the token registry with a pull-scoped token", async () => {
    const user = uniqueUser("pull-ok");
    await createGitlabUser(services.gitlab.url, { ...user, actions: ["pull"] });
    const expected = await manifestBytes(tok.image, `${user.username}:${user.password}`);
    const ctx = probeContext({ target: tok.image, credential: passwordCredential(tok.host, user.username, user.password) });
    const result = await runProbe("pull", ctx, directPull);
    expect(result.success).toBe(true);
    expect(result.bytes).toBe(expected);
    expectLogLine(result.log, { includes: `token GET ${services.gitlab.url}/jwt/auth -> 200` });
    expect(everyText(result)).not.toContain(user.password);
    // The bearer token GitLab issued (a JWT) appears nowhere either.
    expect(everyText(result)).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}/);
  });

  test("is not_found for an unknown tag, with the registry's MANIFEST_UNKNOWN message", async () => {
    const ctx = probeContext({
      target: `${ht.host}/ci/canary:no-such-tag`,
      credential: passwordCredential(ht.host, "alice", ht.users.alice ?? ""),
    });
    const result = await runProbe("pull", ctx, directPull);
    expect(result.reason).toBe("not_found");
    expect(result.error).toBe(`GET http://${ht.host}/v2/ci/canary/manifests/no-such-tag: HTTP 404: manifest unknown`);
  });

  test("is not_found for an unknown repository", async () => {
    const ctx = probeContext({
      target: `${ht.host}/ci/no-such-repo:latest`,
      credential: passwordCredential(ht.host, "alice", ht.users.alice ?? ""),
    });
    const result = await runProbe("pull", ctx, directPull);
    expect(result.reason).toBe("not_found");
    expect(result.error).toBe(`GET http://${ht.host}/v2/ci/no-such-repo/manifests/latest: HTTP 404: manifest unknown`);
  });

  test("is unauthorized pulling from the token registry as a blocked user", async () => {
    const user = uniqueUser("pull-blocked");
    await createGitlabUser(services.gitlab.url, { ...user, actions: ["pull"] });
    await setGitlabUserState(services.gitlab.url, user.username, "blocked");
    const ctx = probeContext({ target: tok.image, credential: passwordCredential(tok.host, user.username, user.password) });
    const result = await runProbe("pull", ctx, directPull);
    expect(result.reason).toBe("unauthorized");
    expect(result.error?.startsWith(`GET ${services.gitlab.url}/jwt/auth: HTTP 401: ${ACCESS_DENIED}.`)).toBe(true);
    expect(everyText(result)).not.toContain(user.password);
  });

  test("is credential_missing pulling from the token registry with no credential (GitLab refuses an anonymous token)", async () => {
    const result = await runProbe("pull", probeContext({ target: tok.image }), directPull);
    expect(result.reason).toBe("credential_missing");
    expect(
      result.error?.startsWith(
        `no credential for ${tok.host}, and it demands one (GET ${services.gitlab.url}/jwt/auth: HTTP 401: ${ACCESS_DENIED}.`,
      ),
    ).toBe(true);
  });
});
