import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { inspect } from "node:util";
import { afterAll, describe, expect, inject, test } from "vitest";
import { credentialRow, runnerCredentials } from "../../../src/credentials/index.js";
import { dockerCli } from "../../services/index.js";
import { b64, cleanTmp, helperOpts, testRunner, tmpDir, writeJson } from "../../fixtures/credentials/support.js";

const services = inject("services");
afterAll(cleanTmp);

describe("a config.json written by the real docker login", () => {
  test("gives alice's password credential for the htpasswd registry with the exact source", async () => {
    const dir = tmpDir();
    const password = services.htpasswd.users.alice ?? "";
    execFileSync(
      dockerCli(),
      ["-H", services.dockerHost, "--config", dir, "login", services.htpasswd.host, "-u", "alice", "--password-stdin"],
      {
        input: password,
        stdio: ["pipe", "ignore", "pipe"],
      },
    );
    const file = join(dir, "config.json");
    const creds = await runnerCredentials(testRunner({ name: "docker-runner", dockerConfig: file }), helperOpts());
    expect(creds).toHaveLength(1);
    const [cred] = creds;
    expect({ ...cred, secret: undefined }).toEqual({
      runner: "docker-runner",
      registry: services.htpasswd.host,
      username: "alice",
      kind: "unknown",
      secretType: "password",
      source: `${file}#auths["${services.htpasswd.host}"]`,
      secret: undefined,
      path: services.htpasswd.host,
      inUse: true,
      shadowedBy: null,
    });
    expect(cred?.secret?.reveal()).toBe(password);
    // What docker login wrote holds the auth value; none of it reaches the credential's printed forms.
    const auth = JSON.parse(readFileSync(file, "utf8")).auths[services.htpasswd.host].auth as string;
    for (const printed of [JSON.stringify(creds), inspect(creds, { depth: 10 }), JSON.stringify(creds.map((c) => credentialRow(c)))]) {
      expect(printed).not.toContain(password);
      expect(printed).not.toContain(auth);
    }
  });
});

describe("auths entries", () => {
  test("decode auth, username/password fields and identitytoken, keyed as written and normalised", async () => {
    const dir = tmpDir();
    const file = writeJson(dir, "config.json", {
      auths: {
        "registry.example.jp": { auth: b64("gitlab+deploy-token-17:dt-secret-9a8b") },
        "https://index.docker.io/v1/": { auth: b64("hubuser:hub-pw-55aa") },
        "https://registry.example.jp:5000/v2/": { username: "project_42_bot_0f9e8d", password: "bot-token-77cc" },
        "ghcr.example.jp": { auth: b64("gitlab-ci-token:"), identitytoken: "idtoken-33dd44" },
        "empty.example.jp": {},
      },
      HttpHeaders: { "User-Agent": "Docker-Client/20.10" },
      proxies: { default: { httpProxy: "http://127.0.0.1:3128" } },
      currentContext: "default",
    });
    const creds = await runnerCredentials(testRunner({ dockerConfig: file }), helperOpts());
    const used = { runner: "r1", inUse: true, shadowedBy: null };
    expect(creds.map((c) => ({ ...c, secret: c.secret?.reveal() }))).toEqual([
      {
        ...used,
        registry: "registry.example.jp",
        path: "registry.example.jp",
        username: "gitlab+deploy-token-17",
        kind: "deploy_token",
        secretType: "password",
        source: `${file}#auths["registry.example.jp"]`,
        secret: "dt-secret-9a8b",
      },
      {
        ...used,
        registry: "docker.io",
        path: "docker.io",
        username: "hubuser",
        kind: "unknown",
        secretType: "password",
        source: `${file}#auths["https://index.docker.io/v1/"]`,
        secret: "hub-pw-55aa",
      },
      {
        ...used,
        registry: "registry.example.jp:5000",
        path: "registry.example.jp:5000",
        username: "project_42_bot_0f9e8d",
        kind: "bot",
        secretType: "password",
        source: `${file}#auths["https://registry.example.jp:5000/v2/"]`,
        secret: "bot-token-77cc",
      },
      {
        ...used,
        registry: "ghcr.example.jp",
        path: "ghcr.example.jp",
        username: "gitlab-ci-token",
        kind: "job_token",
        secretType: "identity_token",
        source: `${file}#auths["ghcr.example.jp"]`,
        secret: "idtoken-33dd44",
      },
    ]);
  });

  test("a missing config.json gives no credentials and no error", async () => {
    const creds = await runnerCredentials(testRunner({ dockerConfig: join(tmpDir(), "nope", "config.json") }), helperOpts());
    expect(creds).toEqual([]);
  });

  test("a DOCKER_AUTH_CONFIG comes before config.json, its source naming the config.toml key", async () => {
    const dir = tmpDir();
    const file = writeJson(dir, "config.json", { auths: { "registry.example.jp": { auth: b64("alice:file-pw-1234") } } });
    const where = "/etc/gitlab-runner/config.toml#runners[0].environment.DOCKER_AUTH_CONFIG";
    const value = JSON.stringify({ auths: { "registry.example.jp": { auth: b64("gitlab+deploy-token-3:env-pw-5678") } } });
    const creds = await runnerCredentials(testRunner({ dockerConfig: file, dockerAuthConfig: { value, source: where } }), helperOpts());
    expect(creds.map((c) => [c.username, c.source])).toEqual([
      ["gitlab+deploy-token-3", `${where}#auths["registry.example.jp"]`],
      ["alice", `${file}#auths["registry.example.jp"]`],
    ]);
  });
});

describe("bad inputs give a credential with an exact reason and one-line message, never hiding the others", () => {
  test("truncated JSON in config.json is credential_invalid naming the file, line and column", async () => {
    const dir = tmpDir();
    const file = writeJson(
      dir,
      "config.json",
      `{\n  "auths": {\n    "registry.example.jp": {\n      "auth": "${b64("alice:trunc-pw-0101")}`,
    );
    const value = JSON.stringify({ auths: { "ok.example.jp": { auth: b64("bob:env-pw-0202") } } });
    const creds = await runnerCredentials(
      testRunner({ dockerConfig: file, dockerAuthConfig: { value, source: "/etc/dac.json" } }),
      helperOpts(),
    );
    expect(creds.map((c) => ({ ...c, secret: undefined }))).toEqual([
      {
        runner: "r1",
        registry: "ok.example.jp",
        path: "ok.example.jp",
        username: "bob",
        kind: "unknown",
        secretType: "password",
        source: `/etc/dac.json#auths["ok.example.jp"]`,
        secret: undefined,
        inUse: true,
        shadowedBy: null,
      },
      {
        runner: "r1",
        registry: "*",
        username: "",
        kind: "unknown",
        secretType: "password",
        source: file,
        secret: undefined,
        error: { reason: "credential_invalid", message: `${file}: invalid JSON at line 4 column 44: Unterminated string` },
        inUse: false,
        shadowedBy: null,
      },
    ]);
  });

  test("JSON that quotes a secret near the error never puts it in the message", async () => {
    const dir = tmpDir();
    const text = `{"auths": {"r.example.jp": {"password": "quoted-pw-9191", "x": nope}}}`;
    // V8's own message quotes the input around the error, here the end of the password.
    expect(() => JSON.parse(text)).toThrow(`..."1", "x": nope}}}" is not valid JSON`);
    const file = writeJson(dir, "config.json", text);
    const [cred] = await runnerCredentials(testRunner({ dockerConfig: file }), helperOpts());
    expect(cred?.error).toEqual({ reason: "credential_invalid", message: `${file}: invalid JSON` });
  });

  test("a key of the wrong type is credential_invalid naming the key", async () => {
    const dir = tmpDir();
    const file = writeJson(dir, "config.json", { auths: { "registry.example.jp": { auth: 42 } } });
    const [cred] = await runnerCredentials(testRunner({ dockerConfig: file }), helperOpts());
    expect(cred?.error).toEqual({ reason: "credential_invalid", message: `${file}: auths["registry.example.jp"].auth: expected a string` });
  });

  test("an unreadable config.json is credential_invalid", async () => {
    const dir = tmpDir();
    const file = join(dir, "config.json");
    mkdirSync(file);
    const [cred] = await runnerCredentials(testRunner({ dockerConfig: file }), helperOpts());
    expect(cred?.error).toEqual({ reason: "credential_invalid", message: `${file}: cannot read: is a directory` });
  });

  test.each([
    ["not*base64!", "auth is not valid base64"],
    [b64("alice-nocolon-pw"), `auth does not decode to "user:password"`],
    [b64(":only-a-password"), `auth does not decode to "user:password"`],
  ])(
    "an auth %s drops the whole file as Docker's loader does: credential_invalid naming the entry, the others listed, not used",
    async (auth, what) => {
      const file = writeJson(tmpDir(), "config.json", {
        auths: { "bad.example.jp": { auth }, "good.example.jp": { auth: b64("carol:good-pw-4242") } },
      });
      const creds = await runnerCredentials(testRunner({ dockerConfig: file }), helperOpts());
      expect(creds.map((c) => [c.registry, c.source, c.username, c.inUse, c.error?.reason, c.error?.message])).toEqual([
        ["bad.example.jp", `${file}#auths["bad.example.jp"]`, "", false, "credential_invalid", `${file}#auths["bad.example.jp"]: ${what}`],
        ["good.example.jp", `${file}#auths["good.example.jp"]`, "carol", false, undefined, undefined],
      ]);
    },
  );

  test("without config.json, ~/.dockercfg (the old format, a bare object of registry to entry) is read, as GitLab Runner does", async () => {
    const home = tmpDir();
    mkdirSync(join(home, ".docker"));
    const legacy = writeJson(home, ".dockercfg", {
      "https://registry.example.jp/v1/": { auth: b64("old-user:old-pw-1919"), email: "a@example.jp" },
    });
    const creds = await runnerCredentials(testRunner({ dockerConfig: join(home, ".docker", "config.json") }), helperOpts());
    expect(creds.map((c) => [c.path, c.username, c.source, c.inUse])).toEqual([
      ["registry.example.jp", "old-user", `${legacy}#auths["https://registry.example.jp/v1/"]`, true],
    ]);
  });
});
