import { afterAll, describe, expect, test } from "vitest";
import { credentialFor, runnerCredentials } from "../../../src/credentials/index.js";
import { b64, cleanTmp, helperOpts, testRunner, tmpDir, writeJson, type StoreEntry } from "../../fixtures/credentials/support.js";

afterAll(cleanTmp);

const ENV = "/etc/gitlab-runner/config.toml#runners[0].environment.DOCKER_AUTH_CONFIG";
const pw = (user: string) => ({ auth: b64(`${user}:${user}-pw-4711`) });

interface Case {
  name: string;
  /** The runner's environment DOCKER_AUTH_CONFIG. */
  env?: object;
  /** The runner user's config.json. */
  file?: object;
  store?: Record<string, StoreEntry>;
  /** The job token's paths (gitlab: configured). */
  jobToken?: string[];
  image: string;
  /** Who the image is pulled as: a username, or null for an anonymous pull. */
  pulledAs: string | null;
  /** Every listed credential: [path, username, in use, shadowed by] with ENV/FILE/JOB for the sources. */
  listed: [string, string, boolean, string | null][];
}

const cases: Case[] = [
  {
    name: "the runner's environment DOCKER_AUTH_CONFIG beats its config.json for the same path",
    env: { auths: { "registry.example.jp": pw("env-user") } },
    file: { auths: { "registry.example.jp": pw("file-user") } },
    image: "registry.example.jp/ci/app:1",
    pulledAs: "env-user",
    listed: [
      ["registry.example.jp", "env-user", true, null],
      ["registry.example.jp", "file-user", false, `ENV#auths["registry.example.jp"]`],
    ],
  },
  {
    name: "a path key in config.json is longer than the environment's host key, so it wins for images below it",
    env: { auths: { "registry.example.jp": pw("env-user") } },
    file: { auths: { "registry.example.jp/team-a": pw("team-user") } },
    image: "registry.example.jp/team-a/app:1",
    pulledAs: "team-user",
    listed: [
      ["registry.example.jp", "env-user", true, null],
      ["registry.example.jp/team-a", "team-user", true, null],
    ],
  },
  {
    name: "a path key does not answer for a sibling path: the host key does",
    file: { auths: { "registry.example.jp": pw("host-user"), "registry.example.jp/team-a": pw("team-user") } },
    image: "registry.example.jp/team-b/app:1",
    pulledAs: "host-user",
    listed: [
      ["registry.example.jp", "host-user", true, null],
      ["registry.example.jp/team-a", "team-user", true, null],
    ],
  },
  {
    name: "a URL key reduces to its host and shadows nothing spelled exactly: the exact spelling wins",
    file: { auths: { "https://registry.example.jp/v2/": pw("url-user"), "registry.example.jp": pw("exact-user") } },
    image: "registry.example.jp/x:1",
    pulledAs: "exact-user",
    listed: [
      ["registry.example.jp", "exact-user", true, null],
      ["registry.example.jp", "url-user", false, `FILE#auths["registry.example.jp"]`],
    ],
  },
  {
    name: "credHelpers overrides the inline auth for its server",
    file: { credHelpers: { "registry.example.jp": "cipt" }, auths: { "registry.example.jp": pw("inline-user") } },
    store: { "registry.example.jp": { Username: "helper-user", Secret: "helper-secret-1" } },
    image: "registry.example.jp/x:1",
    pulledAs: "helper-user",
    listed: [
      ["registry.example.jp", "helper-user", true, null],
      ["registry.example.jp", "inline-user", false, `FILE#credHelpers["registry.example.jp"]`],
    ],
  },
  {
    name: "credsStore overrides the inline auth; credHelpers overrides both",
    file: {
      credsStore: "cipt",
      credHelpers: { "a.example.jp": "cipt" },
      auths: { "b.example.jp": pw("inline-b"), "a.example.jp": pw("inline-a") },
    },
    store: { "a.example.jp": { Username: "store-a", Secret: "s-a-1" }, "b.example.jp": { Username: "store-b", Secret: "s-b-1" } },
    image: "b.example.jp/x:1",
    pulledAs: "store-b",
    listed: [
      ["a.example.jp", "store-a", true, null],
      ["a.example.jp", "store-a", false, `FILE#credHelpers["a.example.jp"]`],
      ["a.example.jp", "inline-a", false, `FILE#credHelpers["a.example.jp"]`],
      ["b.example.jp", "store-b", true, null],
      ["b.example.jp", "inline-b", false, "FILE#credsStore"],
    ],
  },
  {
    name: "the job token comes last: a stored credential for GitLab's registry shadows it",
    file: { auths: { "registry.example.jp": pw("t.yamada") } },
    jobToken: ["registry.example.jp", "gitlab.example.jp:443"],
    image: "registry.example.jp/group/app:1",
    pulledAs: "t.yamada",
    listed: [
      ["registry.example.jp", "t.yamada", true, null],
      ["registry.example.jp", "gitlab-ci-token", false, `FILE#auths["registry.example.jp"]`],
      ["gitlab.example.jp:443", "gitlab-ci-token", true, null],
    ],
  },
  {
    name: "with nothing stored for GitLab's registry the job token is in use (a probe can only pull anonymously)",
    file: { auths: { "other.example.jp": pw("other-user") } },
    jobToken: ["registry.example.jp"],
    image: "registry.example.jp/group/app:1",
    pulledAs: null,
    listed: [
      ["other.example.jp", "other-user", true, null],
      ["registry.example.jp", "gitlab-ci-token", true, null],
    ],
  },
  {
    name: "the dependency proxy is keyed with its port: a key without the port does not shadow the job token there",
    file: { auths: { "gitlab.example.jp": pw("web-user") } },
    jobToken: ["gitlab.example.jp:443"],
    image: "gitlab.example.jp:443/group/dependency_proxy/containers/alpine:3",
    pulledAs: null,
    listed: [
      ["gitlab.example.jp", "web-user", true, null],
      ["gitlab.example.jp:443", "gitlab-ci-token", true, null],
    ],
  },
  {
    name: "an empty key in the environment value shadows config.json: the job pulls anonymously",
    env: { auths: { "registry.example.jp": {} } },
    file: { auths: { "registry.example.jp": pw("file-user") } },
    image: "registry.example.jp/x:1",
    pulledAs: null,
    listed: [["registry.example.jp", "file-user", false, `ENV#auths["registry.example.jp"]`]],
  },
];

describe("the effective credential (SPEC.md, Which credential a runner uses)", () => {
  test.each(cases)("$name", async (c) => {
    const dir = tmpDir();
    const file = c.file ? writeJson(dir, "config.json", c.file) : undefined;
    const runner = testRunner({
      ...(file !== undefined ? { dockerConfig: file } : {}),
      ...(c.env ? { dockerAuthConfig: { value: JSON.stringify(c.env), source: ENV } } : {}),
    });
    const opts = { ...helperOpts({ servers: c.store ?? {} }), ...(c.jobToken ? { jobTokenPaths: c.jobToken } : {}) };
    const rel = (s: string | null | undefined) =>
      (s ?? null) &&
      (s ?? "")
        .split(ENV)
        .join("ENV")
        .split(file ?? "\0")
        .join("FILE");
    const creds = await runnerCredentials(runner, opts);
    expect(creds.map((x) => [x.path, x.username, x.inUse, rel(x.shadowedBy)])).toEqual(c.listed);
    const used = await credentialFor(runner, c.image, opts);
    expect(used?.username ?? null).toBe(c.pulledAs);
    // The one in use is what the probe gets: the same rule, never a second reading of it.
    const paths = new Set(creds.map((x) => x.path));
    for (const path of paths) expect(creds.filter((x) => x.path === path && x.inUse).length).toBeLessThanOrEqual(1);
  });
});
