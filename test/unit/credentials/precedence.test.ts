import { afterAll, describe, expect, test } from "vitest";
import { credentialFor } from "../../../src/credentials/index.js";
import { kindFromUsername } from "../../../src/credentials/kind.js";
import { b64, cleanTmp, helperOpts, testRunner, tmpDir, writeJson, type StoreEntry } from "../../fixtures/credentials/support.js";

afterAll(cleanTmp);

const DAC = "/etc/gitlab-runner/config.toml#runners[0].environment.DOCKER_AUTH_CONFIG";

interface Case {
  name: string;
  /** DOCKER_AUTH_CONFIG value (object, or raw text). */
  dac?: unknown;
  /** config.json (object, or raw text). */
  config?: unknown;
  store?: { servers?: Record<string, StoreEntry>; list?: "fail" };
  target: string;
  /** source relative to its config ("DAC" or "FILE" prefix), and username; undefined for no credential. */
  want: { source: string; username: string; registry?: string; error?: string } | undefined;
}

const pw = (user: string) => ({ auth: b64(`${user}:${user}-pw-1234`) });

const cases: Case[] = [
  {
    name: "DOCKER_AUTH_CONFIG comes before config.json",
    dac: { auths: { "registry.example.jp": pw("env-user") } },
    config: { auths: { "registry.example.jp": pw("file-user") } },
    target: "registry.example.jp",
    want: { source: `DAC#auths["registry.example.jp"]`, username: "env-user" },
  },
  {
    name: "config.json answers for a registry DOCKER_AUTH_CONFIG does not hold",
    dac: { auths: { "other.example.jp": pw("env-user") } },
    config: { auths: { "registry.example.jp": pw("file-user") } },
    target: "registry.example.jp",
    want: { source: `FILE#auths["registry.example.jp"]`, username: "file-user" },
  },
  {
    name: "credHelpers[registry] comes before credsStore and auths",
    config: { credHelpers: { "registry.example.jp": "cipt" }, credsStore: "cipt", auths: { "registry.example.jp": pw("auths-user") } },
    store: { servers: { "registry.example.jp": { Username: "helper-user", Secret: "helper-secret-1" } } },
    target: "registry.example.jp",
    want: { source: `FILE#credHelpers["registry.example.jp"]`, username: "helper-user" },
  },
  {
    name: "credsStore comes before auths",
    config: { credHelpers: { "other.example.jp": "cipt" }, credsStore: "cipt", auths: { "registry.example.jp": pw("auths-user") } },
    store: { servers: { "registry.example.jp": { Username: "store-user", Secret: "store-secret-1" } } },
    target: "registry.example.jp",
    want: { source: "FILE#credsStore", username: "store-user" },
  },
  {
    name: "auths answers for a registry the credsStore does not list",
    config: { credsStore: "cipt", auths: { "registry.example.jp": pw("auths-user") } },
    store: { servers: { "other.example.jp": { Username: "store-user", Secret: "store-secret-1" } } },
    target: "registry.example.jp",
    want: { source: `FILE#auths["registry.example.jp"]`, username: "auths-user" },
  },
  {
    name: "the empty auths entry docker login leaves beside a credsStore is served by the store",
    config: { credsStore: "cipt", auths: { "registry.example.jp": {} } },
    store: { servers: { "registry.example.jp": { Username: "store-user", Secret: "store-secret-1" } } },
    target: "registry.example.jp",
    want: { source: "FILE#credsStore", username: "store-user" },
  },
  {
    name: "a URL key with scheme and /v2/ path matches its host",
    config: { auths: { "https://registry.example.jp/v2/": pw("url-user") } },
    target: "registry.example.jp",
    want: { source: `FILE#auths["https://registry.example.jp/v2/"]`, username: "url-user" },
  },
  {
    name: "the key written exactly as the registry wins over one that matches after normalisation",
    config: { auths: { "https://registry.example.jp/v2/": pw("url-user"), "registry.example.jp": pw("exact-user") } },
    target: "registry.example.jp",
    want: { source: `FILE#auths["registry.example.jp"]`, username: "exact-user" },
  },
  {
    name: "a port is part of the registry: registry.example.jp:5000 does not answer for registry.example.jp",
    config: { auths: { "registry.example.jp:5000": pw("port-user") } },
    target: "registry.example.jp",
    want: undefined,
  },
  {
    name: "registry.example.jp:5000 answers for itself, as a URL key too",
    config: { auths: { "registry.example.jp": pw("plain-user"), "https://registry.example.jp:5000/v2/": pw("port-user") } },
    target: "registry.example.jp:5000",
    want: { source: `FILE#auths["https://registry.example.jp:5000/v2/"]`, username: "port-user", registry: "registry.example.jp:5000" },
  },
  {
    name: "Docker Hub's https://index.docker.io/v1/ key answers for docker.io",
    config: { auths: { "https://index.docker.io/v1/": pw("hub-user") } },
    target: "docker.io",
    want: { source: `FILE#auths["https://index.docker.io/v1/"]`, username: "hub-user", registry: "docker.io" },
  },
  {
    name: "a docker.io key answers for https://index.docker.io/v1/",
    config: { auths: { "docker.io": pw("hub-user") } },
    target: "https://index.docker.io/v1/",
    want: { source: `FILE#auths["docker.io"]`, username: "hub-user", registry: "docker.io" },
  },
  {
    name: "an official Docker Hub image path finds the Hub key",
    config: { auths: { "https://index.docker.io/v1/": pw("hub-user") } },
    target: "docker.io/library/busybox",
    want: { source: `FILE#auths["https://index.docker.io/v1/"]`, username: "hub-user", registry: "docker.io" },
  },
  {
    name: "the most specific key wins for an image path (GitLab Runner matches keys naming a path)",
    config: { auths: { "registry.example.jp": pw("host-user"), "registry.example.jp/team": pw("team-user") } },
    target: "registry.example.jp/team/app",
    want: { source: `FILE#auths["registry.example.jp/team"]`, username: "team-user", registry: "registry.example.jp" },
  },
  {
    name: "a path key does not answer for another path of the same registry",
    config: { auths: { "registry.example.jp": pw("host-user"), "registry.example.jp/team": pw("team-user") } },
    target: "registry.example.jp/other/app",
    want: { source: `FILE#auths["registry.example.jp"]`, username: "host-user" },
  },
  {
    name: "a more specific key in config.json wins over DOCKER_AUTH_CONFIG's host key",
    dac: { auths: { "registry.example.jp": pw("env-user") } },
    config: { auths: { "registry.example.jp/team": pw("team-user") } },
    target: "registry.example.jp/team/app",
    want: { source: `FILE#auths["registry.example.jp/team"]`, username: "team-user", registry: "registry.example.jp" },
  },
  {
    name: "a credHelper that does not hold the registry leaves the job without credentials (no fall back to auths)",
    config: { credHelpers: { "registry.example.jp": "cipt" }, auths: { "registry.example.jp": pw("auths-user") } },
    store: { servers: {} },
    target: "registry.example.jp",
    want: undefined,
  },
  {
    name: "an empty auths entry in DOCKER_AUTH_CONFIG shadows config.json, as in GitLab Runner",
    dac: { auths: { "registry.example.jp": {} } },
    config: { auths: { "registry.example.jp": pw("file-user") } },
    target: "registry.example.jp",
    want: undefined,
  },
  {
    name: "no key for the registry anywhere",
    dac: { auths: { "a.example.jp": pw("a") } },
    config: { auths: { "b.example.jp": pw("b") } },
    target: "registry.example.jp",
    want: undefined,
  },
  {
    name: "a DOCKER_AUTH_CONFIG with an auth that does not decode is dropped whole, as Docker's loader rejects it: config.json answers",
    dac: { auths: { "registry.example.jp": { auth: "!!!!" } } },
    config: { auths: { "registry.example.jp": pw("file-user") } },
    target: "registry.example.jp",
    want: { source: `FILE#auths["registry.example.jp"]`, username: "file-user" },
  },
  {
    name: "a broken DOCKER_AUTH_CONFIG is skipped as GitLab Runner skips it: config.json answers",
    dac: `{"auths": {`,
    config: { auths: { "registry.example.jp": pw("file-user") } },
    target: "registry.example.jp",
    want: { source: `FILE#auths["registry.example.jp"]`, username: "file-user" },
  },
  {
    name: "a broken DOCKER_AUTH_CONFIG answers with its error where nothing else holds the registry",
    dac: `{"auths": {`,
    config: { auths: { "other.example.jp": pw("file-user") } },
    target: "registry.example.jp",
    want: {
      source: "DAC",
      username: "",
      registry: "*",
      error: "credential_invalid: DAC: invalid JSON at line 1 column 12: Expected property name or '}'",
    },
  },
  {
    name: "a broken config.json does not hide DOCKER_AUTH_CONFIG's credential",
    dac: { auths: { "registry.example.jp": pw("env-user") } },
    config: `{"auths": `,
    target: "registry.example.jp",
    want: { source: `DAC#auths["registry.example.jp"]`, username: "env-user" },
  },
  {
    name: "a config.json cut short answers for every registry with its error when nothing comes before it",
    config: `{"auths": `,
    target: "registry.example.jp",
    want: { source: "FILE", username: "", registry: "*", error: "credential_invalid: FILE: invalid JSON: unexpected end of input" },
  },
  {
    name: "a credsStore whose list fails drops the whole file, its auths too: helper_failed naming the file",
    config: { credsStore: "cipt", auths: { "registry.example.jp": pw("auths-user") } },
    store: { list: "fail" },
    target: "registry.example.jp",
    want: {
      source: "FILE",
      username: "",
      registry: "*",
      error: "helper_failed: FILE#credsStore: docker-credential-cipt list exited with code 1: the keyring is locked",
    },
  },
  {
    name: "a failing credHelper for another registry drops the whole file, as GitLab Runner reads every helper",
    config: { credHelpers: { "other.example.jp": "nosuchhelper" }, auths: { "registry.example.jp": pw("auths-user") } },
    target: "registry.example.jp",
    want: {
      source: `FILE#credHelpers["other.example.jp"]`,
      username: "",
      registry: "other.example.jp",
      error: `helper_failed: FILE#credHelpers["other.example.jp"]: docker-credential-nosuchhelper is not installed (not found on PATH)`,
    },
  },
  {
    name: "a config.json dropped for a failed helper hides nothing DOCKER_AUTH_CONFIG holds",
    dac: { auths: { "registry.example.jp": pw("env-user") } },
    config: { credHelpers: { "other.example.jp": "nosuchhelper" } },
    target: "registry.example.jp",
    want: { source: `DAC#auths["registry.example.jp"]`, username: "env-user" },
  },
];

describe("credentialFor picks the credential GitLab Runner would use", () => {
  test.each(cases)("$name", async (c) => {
    const dir = tmpDir();
    const file = c.config === undefined ? undefined : writeJson(dir, "config.json", c.config);
    const runner = testRunner({
      ...(file !== undefined ? { dockerConfig: file } : {}),
      ...(c.dac !== undefined
        ? { dockerAuthConfig: { value: typeof c.dac === "string" ? c.dac : JSON.stringify(c.dac), source: DAC } }
        : {}),
    });
    const got = await credentialFor(runner, c.target, helperOpts(c.store ?? {}));
    const rel = (s: string) =>
      s
        .split(DAC)
        .join("DAC")
        .split(file ?? "\0")
        .join("FILE");
    if (c.want === undefined) {
      expect(got).toBeUndefined();
      return;
    }
    expect({
      source: rel(got?.source ?? ""),
      username: got?.username,
      registry: got?.registry,
      error: got?.error ? `${got.error.reason}: ${rel(got.error.message)}` : undefined,
    }).toEqual({
      source: c.want.source,
      username: c.want.username,
      registry: c.want.registry ?? "registry.example.jp",
      error: c.want.error,
    });
  });

  test("every helper of a config is run, as GitLab Runner resolves the whole file: one that hangs drops it at the timeout", async () => {
    const file = writeJson(tmpDir(), "config.json", { credHelpers: { "registry.example.jp": "cipt", "slow.example.jp": "cipt" } });
    const opts = helperOpts(
      { servers: { "registry.example.jp": { Username: "u", Secret: "only-this-1" }, "slow.example.jp": { hang: true } } },
      { helperTimeoutMs: 500 },
    );
    const got = await credentialFor(testRunner({ dockerConfig: file }), "registry.example.jp", opts);
    expect({ source: got?.source, registry: got?.registry, error: got?.error }).toEqual({
      source: `${file}#credHelpers["slow.example.jp"]`,
      registry: "slow.example.jp",
      error: {
        reason: "helper_failed",
        message: `${file}#credHelpers["slow.example.jp"]: docker-credential-cipt get gave no answer within 500ms`,
      },
    });
  });
});

describe("kindFromUsername", () => {
  test.each([
    ["gitlab+deploy-token-17", "deploy_token"],
    ["project_42_bot", "bot"],
    ["project_42_bot1", "bot"],
    ["project_42_bot_0a1b2c3d4e5f", "bot"],
    ["group_7_bot_ffee", "bot"],
    ["gitlab-ci-token", "job_token"],
    ["alice", "unknown"],
    ["gitlab+deploy-token-", "unknown"],
    ["my_project_42_bot", "unknown"],
    ["", "unknown"],
  ])("%s is %s", (username, kind) => {
    expect(kindFromUsername(username)).toBe(kind);
  });
});
