import { readFileSync } from "node:fs";
import { join } from "node:path";
import { inspect } from "node:util";
import { afterAll, describe, expect, test } from "vitest";
import { credentialFor, credentialRow, runnerCredentials } from "../../../src/credentials/index.js";
import { cleanTmp, helperOpts, testRunner, tmpDir, writeJson } from "../../fixtures/credentials/support.js";

afterAll(cleanTmp);

function calls(log: string): string[] {
  return readFileSync(log, "utf8")
    .trim()
    .split("\n")
    .filter((l) => l !== "")
    .sort();
}

describe("credential helpers through the real protocol", () => {
  test("credHelpers[registry] runs docker-credential-NAME get with the key on stdin", async () => {
    const file = writeJson(tmpDir(), "config.json", { credHelpers: { "registry.example.jp": "cipt" } });
    const opts = helperOpts({ servers: { "registry.example.jp": { Username: "gitlab+deploy-token-8", Secret: "helper-secret-0808" } } });
    const creds = await runnerCredentials(testRunner({ dockerConfig: file }), opts);
    expect(creds.map((c) => ({ ...c, secret: c.secret?.reveal() }))).toEqual([
      {
        runner: "r1",
        registry: "registry.example.jp",
        username: "gitlab+deploy-token-8",
        kind: "deploy_token",
        secretType: "helper",
        helper: "cipt",
        source: `${file}#credHelpers["registry.example.jp"]`,
        secret: "helper-secret-0808",
        path: "registry.example.jp",
        inUse: true,
        shadowedBy: null,
      },
    ]);
    expect(calls(opts.log)).toEqual(["get registry.example.jp"]);
  });

  test("credsStore serves what its list names over the empty auths entries docker login leaves; <token> is an identity token", async () => {
    const file = writeJson(tmpDir(), "config.json", {
      auths: { "registry.example.jp": {}, "leftover.example.jp": {} },
      credsStore: "cipt",
    });
    const opts = helperOpts({
      servers: {
        "registry.example.jp": { Username: "project_7_bot_aa11", Secret: "store-secret-7777" },
        "https://index.docker.io/v1/": { Username: "<token>", Secret: "hub-identity-token-1234" },
      },
    });
    const creds = await runnerCredentials(testRunner({ dockerConfig: file }), opts);
    const store = { runner: "r1", secretType: "helper", helper: "cipt", source: `${file}#credsStore`, inUse: true, shadowedBy: null };
    expect(creds.map((c) => ({ ...c, secret: c.secret?.reveal() }))).toEqual([
      {
        ...store,
        registry: "registry.example.jp",
        path: "registry.example.jp",
        username: "project_7_bot_aa11",
        kind: "bot",
        secret: "store-secret-7777",
      },
      {
        ...store,
        registry: "docker.io",
        path: "docker.io",
        username: "",
        kind: "unknown",
        secretType: "identity_token",
        secret: "hub-identity-token-1234",
      },
    ]);
    // Docker's native store asks `get` only for what `list` names; the leftover empty entry stays empty (an anonymous pull).
    expect(calls(opts.log)).toEqual(["get https://index.docker.io/v1/", "get registry.example.jp", "list"]);
  });

  test("a helper's 'credentials not found in native keychain' is no credential, not an error", async () => {
    const file = writeJson(tmpDir(), "config.json", { credHelpers: { "registry.example.jp": "cipt" } });
    const creds = await runnerCredentials(testRunner({ dockerConfig: file }), helperOpts({ servers: {} }));
    expect(creds).toEqual([]);
  });

  test("a missing helper is helper_failed naming the helper and the file, and drops the whole file as GitLab Runner does", async () => {
    const file = writeJson(tmpDir(), "config.json", {
      credHelpers: { "registry.example.jp": "cipt-missing", "ok.example.jp": "cipt" },
      auths: { "auths.example.jp": { username: "dave", password: "dave-pw-3131" } },
    });
    const opts = helperOpts({ servers: { "ok.example.jp": { Username: "erin", Secret: "erin-secret-5151" } } });
    const creds = await runnerCredentials(testRunner({ dockerConfig: file }), opts);
    expect(creds.map((c) => [c.registry, c.source, c.username, c.inUse, c.error])).toEqual([
      [
        "registry.example.jp",
        `${file}#credHelpers["registry.example.jp"]`,
        "",
        false,
        {
          reason: "helper_failed",
          message: `${file}#credHelpers["registry.example.jp"]: docker-credential-cipt-missing is not installed (not found on PATH)`,
        },
      ],
      // Listed, never used: the runner drops the file they came from.
      ["ok.example.jp", `${file}#credHelpers["ok.example.jp"]`, "erin", false, undefined],
      ["auths.example.jp", `${file}#auths["auths.example.jp"]`, "dave", false, undefined],
    ]);
  });

  test("a hanging helper is killed at the timeout and is helper_failed", async () => {
    const file = writeJson(tmpDir(), "config.json", { credHelpers: { "registry.example.jp": "cipt" } });
    const opts = helperOpts({ servers: { "registry.example.jp": { hang: true } } }, { helperTimeoutMs: 400 });
    const t0 = performance.now();
    const creds = await runnerCredentials(testRunner({ dockerConfig: file }), opts);
    const elapsed = performance.now() - t0;
    expect(creds.map((c) => c.error)).toEqual([
      {
        reason: "helper_failed",
        message: `${file}#credHelpers["registry.example.jp"]: docker-credential-cipt get gave no answer within 400ms`,
      },
    ]);
    expect(elapsed).toBeGreaterThanOrEqual(400);
    expect(elapsed).toBeLessThan(400 + 300);
  });

  test("a hanging shell helper's own children are killed with it, so the timeout holds", async () => {
    const dir = tmpDir();
    const pidFile = join(dir, "sleep.pid");
    const file = writeJson(dir, "config.json", { credHelpers: { "registry.example.jp": "ciptsleep" } });
    const opts = helperOpts({}, { helperTimeoutMs: 400, env: { CIPT_PIDFILE: pidFile } });
    const t0 = performance.now();
    const cred = await credentialFor(testRunner({ dockerConfig: file }), "registry.example.jp", opts);
    // What fails here is the helper's `sleep 30` child holding the pipe: 30 s. The margin over the 400 ms
    // timeout is for spawning and killing two processes on a loaded 2-core box (724 ms seen with 300 ms).
    expect(performance.now() - t0).toBeLessThan(400 + 2000);
    expect(cred?.error).toEqual({
      reason: "helper_failed",
      message: `${file}#credHelpers["registry.example.jp"]: docker-credential-ciptsleep get gave no answer within 400ms`,
    });
    const pid = Number(readFileSync(pidFile, "utf8"));
    expect(await gone(pid)).toBe(true);
  });

  test("a helper that exits non-zero is helper_failed with its one-line explanation", async () => {
    const file = writeJson(tmpDir(), "config.json", { credHelpers: { "registry.example.jp": "cipt" } });
    const opts = helperOpts({ servers: { "registry.example.jp": { fail: "pass store is uninitialized\nsecond line", code: 3 } } });
    const [cred] = await runnerCredentials(testRunner({ dockerConfig: file }), opts);
    expect(cred?.error).toEqual({
      reason: "helper_failed",
      message: `${file}#credHelpers["registry.example.jp"]: docker-credential-cipt get exited with code 3: pass store is uninitialized`,
    });
  });

  test("a failing or garbled helper answer never puts what it printed (maybe a secret) in the message", async () => {
    const answers = {
      "a.example.jp": { fail: `{"Username":"x","Secret":"leaky-secret-4646"}`, code: 1 },
      "b.example.jp": { garbage: "Secret=leaky-secret-5757 but not JSON" },
    };
    const errors = [];
    for (const key of ["a.example.jp", "b.example.jp"]) {
      const file = writeJson(tmpDir(), "config.json", { credHelpers: { [key]: "cipt" } });
      const creds = await runnerCredentials(testRunner({ dockerConfig: file }), helperOpts({ servers: answers }));
      errors.push(...creds.map((c) => c.error && { ...c.error, message: c.error.message.replace(file, "FILE") }));
    }
    expect(errors).toEqual([
      { reason: "helper_failed", message: `FILE#credHelpers["a.example.jp"]: docker-credential-cipt get exited with code 1` },
      {
        reason: "helper_failed",
        message: `FILE#credHelpers["b.example.jp"]: docker-credential-cipt get printed no credential-helper JSON`,
      },
    ]);
  });

  test("a credsStore whose list fails is one helper_failed credential for every registry", async () => {
    const file = writeJson(tmpDir(), "config.json", { credsStore: "cipt", auths: { "registry.example.jp": {} } });
    const creds = await runnerCredentials(testRunner({ dockerConfig: file }), helperOpts({ list: "fail" }));
    expect(creds).toEqual([
      {
        runner: "r1",
        registry: "*",
        username: "",
        kind: "unknown",
        secretType: "helper",
        helper: "cipt",
        source: file,
        error: {
          reason: "helper_failed",
          message: `${file}#credsStore: docker-credential-cipt list exited with code 1: the keyring is locked`,
        },
        inUse: false,
        shadowedBy: null,
      },
    ]);
  });

  test("a helper name that is a path is credential_invalid and is not run", async () => {
    const file = writeJson(tmpDir(), "config.json", { credHelpers: { "registry.example.jp": "../../tmp/evil" } });
    const [cred] = await runnerCredentials(testRunner({ dockerConfig: file }), helperOpts());
    expect(cred?.error).toEqual({
      reason: "credential_invalid",
      message: `${file}#credHelpers["registry.example.jp"]: helper name "../../tmp/evil" is a path; Docker runs docker-credential-NAME from PATH`,
    });
  });

  test("the caller's abort stops a running helper at once and rejects with the abort reason", async () => {
    const file = writeJson(tmpDir(), "config.json", { credHelpers: { "registry.example.jp": "cipt" } });
    const controller = new AbortController();
    const opts = helperOpts({ servers: { "registry.example.jp": { hang: true } } }, { helperTimeoutMs: 10_000, signal: controller.signal });
    setTimeout(() => controller.abort(new Error("probe deadline")), 200);
    const t0 = performance.now();
    await expect(runnerCredentials(testRunner({ dockerConfig: file }), opts)).rejects.toThrow("probe deadline");
    expect(performance.now() - t0).toBeLessThan(200 + 300);
  });

  test("no secret from any source appears in JSON, util.inspect, rows or error messages", async () => {
    const dir = tmpDir();
    const secrets = ["pw-auths-8282", "pw-fields-9393", "idtok-7171-xyz", "helper-secret-6161", "store-secret-5353", "leaky-secret-4242"];
    const auth = Buffer.from(`alice:${secrets[0]}`).toString("base64");
    const file = writeJson(dir, "config.json", {
      auths: {
        "a.example.jp": { auth },
        "b.example.jp": { username: "bob", password: secrets[1] },
        "c.example.jp": { auth: Buffer.from("carol:").toString("base64"), identitytoken: secrets[2] },
      },
      credHelpers: { "e.example.jp": "cipt" },
      credsStore: "cipt",
    });
    const opts = helperOpts({
      servers: {
        "e.example.jp": { Username: "eve", Secret: secrets[3]! },
        "g.example.jp": { Username: "gina", Secret: secrets[4]! },
      },
    });
    const good = await runnerCredentials(testRunner({ dockerConfig: file }), opts);
    // e comes twice: through credHelpers (in use) and through the credsStore, whose list names every server it holds.
    expect(good.map((c) => [c.source.slice(file.length), c.registry, c.inUse])).toEqual([
      [`#credHelpers["e.example.jp"]`, "e.example.jp", true],
      ["#credsStore", "e.example.jp", false],
      ["#credsStore", "g.example.jp", true],
      [`#auths["a.example.jp"]`, "a.example.jp", true],
      [`#auths["b.example.jp"]`, "b.example.jp", true],
      [`#auths["c.example.jp"]`, "c.example.jp", true],
    ]);
    const badAuth = writeJson(tmpDir(), "config.json", { auths: { "a.example.jp": { auth }, "d.example.jp": { auth: "bad*base64" } } });
    const leaky = writeJson(tmpDir(), "config.json", { credHelpers: { "f.example.jp": "cipt" } });
    const leakyOpts = helperOpts({ servers: { "f.example.jp": { fail: `{"Secret":"${secrets[5]}"}` } } });
    const bad = [
      ...(await runnerCredentials(testRunner({ dockerConfig: badAuth }), opts)),
      ...(await runnerCredentials(testRunner({ dockerConfig: leaky }), leakyOpts)),
    ];
    expect(bad.map((c) => c.error?.reason)).toEqual([undefined, "credential_invalid", "helper_failed"]);
    const creds = [...good, ...bad];
    const printed = [
      JSON.stringify(creds),
      inspect(creds, { depth: 10 }),
      JSON.stringify(creds.map((c) => credentialRow(c))),
      creds.map((c) => c.error?.message ?? "").join("\n"),
      String(creds[0]?.secret),
    ];
    for (const text of printed) {
      for (const secret of [...secrets, auth, "bad*base64"]) expect(text).not.toContain(secret);
    }
  });
});

describe("credentialRow", () => {
  test("is the credentials --json object: in_use, shadowed_by, and error and reason only for a broken source", async () => {
    const file = writeJson(tmpDir(), "config.json", {
      auths: { "registry.example.jp": { username: "gitlab-ci-token", password: "job-token-2727" }, "bad.example.jp": { auth: "%%%%" } },
    });
    const creds = await runnerCredentials(testRunner({ name: "docker-runner-1", dockerConfig: file }), helperOpts());
    expect(creds.map((c) => credentialRow(c))).toStrictEqual([
      {
        runner: "docker-runner-1",
        registry: "registry.example.jp",
        username: "gitlab-ci-token",
        kind: "job_token",
        secret_type: "password",
        source: `${file}#auths["registry.example.jp"]`,
        in_use: false,
        shadowed_by: null,
      },
      {
        runner: "docker-runner-1",
        registry: "bad.example.jp",
        username: "",
        kind: "unknown",
        secret_type: "password",
        source: `${file}#auths["bad.example.jp"]`,
        in_use: false,
        shadowed_by: null,
        error: `${file}#auths["bad.example.jp"]: auth is not valid base64`,
        reason: "credential_invalid",
      },
    ]);
    const ok = writeJson(tmpDir(), "config.json", {
      auths: {
        "registry.example.jp": { username: "gitlab-ci-token", password: "job-token-2727" },
        "https://registry.example.jp/v2/": { username: "x", password: "y" },
      },
    });
    const rows = (await runnerCredentials(testRunner({ name: "docker-runner-1", dockerConfig: ok }), helperOpts())).map((c) =>
      credentialRow(c),
    );
    expect(rows).toStrictEqual([
      {
        runner: "docker-runner-1",
        registry: "registry.example.jp",
        username: "gitlab-ci-token",
        kind: "job_token",
        secret_type: "password",
        source: `${ok}#auths["registry.example.jp"]`,
        in_use: true,
        shadowed_by: null,
      },
      {
        runner: "docker-runner-1",
        registry: "registry.example.jp",
        username: "x",
        kind: "unknown",
        secret_type: "password",
        source: `${ok}#auths["https://registry.example.jp/v2/"]`,
        in_use: false,
        shadowed_by: `${ok}#auths["registry.example.jp"]`,
      },
    ]);
  });
});

/** True once the process is gone or a zombie (killed, waiting for a reaper that is not us). */
async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      if (/^\d+ \(.*\) Z/.test(stat)) return true;
    } catch {
      return true;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}
