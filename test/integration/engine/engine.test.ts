import { mkdtempSync } from "node:fs";
import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, inject, test } from "vitest";
import { createGitlabUser, setGitlabUserState } from "../../helpers/fixtures.js";
import type { LocalCanaryConfig } from "../../../src/config/resolve.js";
import { engineAuth, registryAuthHeader } from "../../../src/engine/auth.js";
import { createLogger } from "../../../src/log.js";
import { localCanary, removeCanaryContainers } from "../../../src/probes/canary-local.js";
import { engineLogin, enginePull } from "../../../src/probes/engine.js";
import { runProbe } from "../../../src/probes/run.js";
import { ProbeLog, type ProbeBodyContext, type ProbeContext } from "../../../src/probes/types.js";
import { Secret } from "../../../src/secret.js";
import type { Credential, ProbeKind, ProbeResult, Runner } from "../../../src/types.js";
import { ACCESS_DENIED_MESSAGE } from "../../fake-gitlab/jwt.js";
import { buildBusyboxTar, dockerCli } from "../../services/index.js";
import { run } from "../../services/procs.js";
import { normalizeRegistry } from "../../../src/image.js";
import { expectLogLine } from "../../helpers/log.js";

const services = inject("services");
const docker = (...args: string[]) => run(dockerCli(), ["-H", services.dockerHost, ...args]);
const MISSING_SOCKET = "unix:///nonexistent/ci-prober/docker.sock";

afterEach(async () => {
  // Every canary container is removed, whatever the test's outcome.
  expect(
    await docker("ps", "-a", "-q", "--filter", "label=io.ci-prober.canary", "--filter", "label=io.ci-prober.runner=engine-runner"),
  ).toBe("");
});

let seq = 0;
/** A fresh user on the fake GitLab (tests never share users, so a block stays local to one test). */
function gitlabUser(): Promise<{ username: string; password: string }> {
  return createGitlabUser(services.gitlab.url, { username: `engine-${process.pid}-${++seq}` });
}

function block(username: string): Promise<void> {
  return setGitlabUserState(services.gitlab.url, username, "blocked");
}

function credential(registry: string, username: string, password: string): Credential {
  return {
    runner: "engine-runner",
    registry,
    username,
    secretType: "password",
    kind: "personal",
    source: `/home/gitlab-runner/.docker/config.json#auths["${registry}"]`,
    secret: new Secret(password),
  };
}

function localSettings(local?: Partial<LocalCanaryConfig>): LocalCanaryConfig {
  return { image: services.token.image, command: ["sh", "-c", "echo canary-ok"], network: "none", ...local };
}

interface Probe {
  ctx: ProbeContext<LocalCanaryConfig>;
  /** Every line the process logger wrote. */
  logged: string[];
}

function probeContext(opts: {
  target: string;
  credentials?: Credential[];
  dockerHost?: string;
  fresh?: boolean;
  timeoutMs?: number;
  local?: Partial<LocalCanaryConfig>;
}): Probe {
  const logged: string[] = [];
  const runner: Runner = {
    name: "engine-runner",
    mode: "engine",
    source: "test.yml#runners[0]",
    dockerHost: opts.dockerHost ?? services.dockerHost,
    images: [],
    ...(opts.fresh ? { fresh: true } : {}),
  };
  const ctx: ProbeContext<LocalCanaryConfig> = {
    settings: localSettings(opts.local),
    runner,
    target: opts.target,
    signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
    log: new ProbeLog(),
    logger: createLogger("debug", (line) => logged.push(line)),
    credentialFor: async (target) => opts.credentials?.find((c) => c.registry === normalizeRegistry(target)),
  };
  return { ctx, logged };
}

const BODIES: Record<ProbeKind, (ctx: ProbeBodyContext<LocalCanaryConfig>) => Promise<void>> = {
  login: engineLogin,
  pull: enginePull,
  canary: localCanary,
};

function probe(kind: ProbeKind, p: Probe): Promise<ProbeResult> {
  return runProbe(kind, p.ctx, BODIES[kind]);
}

function summary(r: ProbeResult) {
  return { probe: r.probe, target: r.target, success: r.success, reason: r.reason, error: r.error };
}

/** A uniquely built image (its own layer, absent from the daemon) pushed to the htpasswd registry. */
async function pushUniqueImage(name: string): Promise<{ image: string; layerBytes: number; layerDigest: string }> {
  const tmp = mkdtempSync(join(services.tmp, "engine-"));
  const tar = buildBusyboxTar(tmp, name);
  const local = `ci-prober-engine-test/${name}:1`;
  await docker("import", tar, local);
  await docker("save", "-o", join(tmp, "image.tar"), local);
  await docker("rmi", local);
  const image = `${services.htpasswd.host}/engine/${name}:1`;
  const creds = `admin:${services.htpasswd.users.admin}`;
  await run("skopeo", [
    "copy",
    "--quiet",
    "--dest-tls-verify=false",
    "--dest-creds",
    creds,
    `docker-archive:${join(tmp, "image.tar")}`,
    `docker://${image}`,
  ]);
  const manifest = JSON.parse(await run("skopeo", ["inspect", "--raw", "--tls-verify=false", "--creds", creds, `docker://${image}`])) as {
    layers: { size: number; digest: string }[];
  };
  const layer = manifest.layers[0];
  if (!layer || manifest.layers.length !== 1) throw new Error("expected one layer");
  return { image, layerBytes: layer.size, layerDigest: layer.digest };
}

describe("engine login and pull", () => {
  test("login and pull through the daemon succeed with a valid token-registry credential and name the credential", async () => {
    const user = await gitlabUser();
    const creds = [credential(services.token.host, user.username, user.password)];
    const login = await probe("login", probeContext({ target: services.token.host, credentials: creds }));
    const pull = await probe("pull", probeContext({ target: services.token.image, credentials: creds }));
    expect(summary(login)).toEqual({ probe: "login", target: services.token.host, success: true, reason: undefined, error: undefined });
    expect(summary(pull)).toEqual({ probe: "pull", target: services.token.image, success: true, reason: undefined, error: undefined });
    expect(login.credential).toEqual({
      registry: services.token.host,
      username: user.username,
      kind: "personal",
      source: `/home/gitlab-runner/.docker/config.json#auths["${services.token.host}"]`,
      secretType: "password",
    });
    expectLogLine(login.log, { endsWith: `POST /auth ${services.token.host} on ${services.dockerHost} -> Login Succeeded` });
  });

  test("login and pull with an htpasswd credential whose X-Registry-Auth needs base64 padding succeed", async () => {
    const password = services.htpasswd.users.alice ?? "";
    const cred = credential(services.htpasswd.host, "alice", password);
    // The daemon silently drops an unpadded header and pulls anonymously; this JSON's length makes padding necessary.
    expect(registryAuthHeader(engineAuth(cred)).endsWith("=")).toBe(true);
    const login = await probe("login", probeContext({ target: services.htpasswd.host, credentials: [cred] }));
    const pull = await probe("pull", probeContext({ target: services.htpasswd.image, credentials: [cred] }));
    expect([login.success, pull.success, pull.error]).toEqual([true, true, undefined]);
  });

  test("after the user is blocked login and pull fail with unauthorized, even with the image cached", async () => {
    const user = await gitlabUser();
    const creds = [credential(services.token.host, user.username, user.password)];
    const before = await probe("pull", probeContext({ target: services.token.image, credentials: creds }));
    expect(before.success).toBe(true);
    await block(user.username);
    const login = await probe("login", probeContext({ target: services.token.host, credentials: creds }));
    const pull = await probe("pull", probeContext({ target: services.token.image, credentials: creds }));
    const host = services.token.host;
    expect(summary(login)).toEqual({
      probe: "login",
      target: host,
      success: false,
      reason: "unauthorized",
      error: `login to ${host}: Get "http://${host}/v2/": unauthorized: ${ACCESS_DENIED_MESSAGE}`,
    });
    expect(summary(pull)).toEqual({
      probe: "pull",
      target: services.token.image,
      success: false,
      reason: "unauthorized",
      error: `pull ${services.token.image}: Head "http://${host}/v2/ci/canary/manifests/latest": unauthorized: ${ACCESS_DENIED_MESSAGE}`,
    });
    // The failed result still names the credential, so the page can point at its file.
    expect(pull.credential?.source).toBe(`/home/gitlab-runner/.docker/config.json#auths["${host}"]`);
  });

  test("a wrong htpasswd password fails login and pull with unauthorized", async () => {
    const cred = credential(services.htpasswd.host, "alice", "not-alices-password");
    const login = await probe("login", probeContext({ target: services.htpasswd.host, credentials: [cred] }));
    const pull = await probe("pull", probeContext({ target: services.htpasswd.image, credentials: [cred] }));
    const host = services.htpasswd.host;
    expect([login.reason, login.error]).toEqual([
      "unauthorized",
      `login to ${host}: login attempt to http://${host}/v2/ failed with status: 401 Unauthorized`,
    ]);
    expect([pull.reason, pull.error]).toEqual(["unauthorized", `pull ${services.htpasswd.image}: unauthorized: authentication required`]);
  });

  test("login without a credential for the registry fails with credential_missing; a credential with a read error keeps its reason", async () => {
    const missing = await probe("login", probeContext({ target: services.token.host }));
    expect([missing.reason, missing.error]).toEqual([
      "credential_missing",
      `runner engine-runner holds no credential for ${services.token.host}`,
    ]);
    const broken: Credential = {
      ...credential(services.token.host, "x", "y-secret"),
      error: { reason: "helper_failed", message: "docker-credential-pass get: exited 1" },
    };
    const helper = await probe("login", probeContext({ target: services.token.host, credentials: [broken] }));
    expect([helper.reason, helper.error]).toEqual(["helper_failed", "docker-credential-pass get: exited 1"]);
  });

  test("a pull without a credential for the registry goes anonymously, as a job's would, and meets the registry's refusal", async () => {
    const pull = await probe("pull", probeContext({ target: services.htpasswd.image }));
    const host = services.htpasswd.host;
    expect([pull.reason, pull.error, pull.credential]).toEqual([
      "unauthorized",
      `pull ${services.htpasswd.image}: Head "http://${host}/v2/ci/canary/manifests/latest": no basic auth credentials`,
      undefined,
    ]);
    expectLogLine(pull.log, { endsWith: `no credential for ${host}: pulling anonymously` });
  });

  test("a tag the registry does not have fails the pull with not_found", async () => {
    const cred = credential(services.htpasswd.host, "alice", services.htpasswd.users.alice ?? "");
    const image = `${services.htpasswd.host}/ci/canary:no-such-tag`;
    const pull = await probe("pull", probeContext({ target: image, credentials: [cred] }));
    expect([pull.reason, pull.error]).toEqual([
      "not_found",
      `pull ${image}: manifest for ${image} not found: manifest unknown: manifest unknown`,
    ]);
  });

  test("fresh pull fetches every layer byte; a pull of the present image fetches none but still succeeds", async () => {
    const { image, layerBytes } = await pushUniqueImage("fresh-bytes");
    const cred = credential(services.htpasswd.host, "alice", services.htpasswd.users.alice ?? "");
    const first = await probe("pull", probeContext({ target: image, credentials: [cred], fresh: true }));
    const again = await probe("pull", probeContext({ target: image, credentials: [cred] }));
    const refetch = await probe("pull", probeContext({ target: image, credentials: [cred], fresh: true }));
    expect([first.success, first.bytes]).toEqual([true, layerBytes]);
    expect([again.success, again.bytes]).toEqual([true, 0]);
    expect([refetch.success, refetch.bytes]).toEqual([true, layerBytes]);
    await docker("rmi", image);
  });

  test("an error inside the daemon's HTTP 200 progress stream fails the pull", async () => {
    const { image, layerDigest } = await pushUniqueImage("broken-blob");
    const admin = `admin:${services.htpasswd.users.admin}`;
    const res = await fetch(`http://${services.htpasswd.host}/v2/engine/broken-blob/blobs/${layerDigest}`, {
      method: "DELETE",
      headers: { authorization: `Basic ${Buffer.from(admin).toString("base64")}` },
    });
    expect(res.status).toBe(202);
    const cred = credential(services.htpasswd.host, "alice", services.htpasswd.users.alice ?? "");
    const pull = await probe("pull", probeContext({ target: image, credentials: [cred] }));
    expect([pull.success, pull.reason, pull.error]).toEqual([false, "not_found", `pull ${image}: unknown blob`]);
    expectLogLine(pull.log, { includes: "POST /images/create", endsWith: "-> 200, reading progress" });
  });

  // dockerd 20.10 keeps downloading after its client leaves (it does the same when `docker pull` is
  // interrupted), so what is asserted is the probe's side: it returns at its deadline.
  test("a pull whose layer download hangs inside the HTTP 200 stream returns timeout at the deadline", async () => {
    const { image, layerDigest } = await pushUniqueImage("hang-blob");
    // A pass-through to the real registry that never answers the layer blob.
    const proxy = createServer((req, res) => {
      if (req.url?.endsWith(`/blobs/${layerDigest}`)) return;
      const upstream = request(
        { host: "127.0.0.1", port: Number(services.htpasswd.host.split(":")[1]), path: req.url, method: req.method, headers: req.headers },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    try {
      const host = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
      const proxied = image.replace(services.htpasswd.host, host);
      const cred = credential(host, "alice", services.htpasswd.users.alice ?? "");
      const t0 = performance.now();
      const pull = await probe("pull", probeContext({ target: proxied, credentials: [cred], timeoutMs: 2_000 }));
      expect(performance.now() - t0).toBeLessThan(4_000);
      expect(pull.reason).toBe("timeout");
      expect(pull.error).toMatch(/^timed out after \d+ms \(The operation was aborted\)$/);
      // The stream had started: the daemon answered 200 before the layer hung.
      expectLogLine(pull.log, { endsWith: "-> 200, reading progress" });
    } finally {
      proxy.closeAllConnections();
      await new Promise((resolve) => proxy.close(resolve));
    }
  });

  test("a missing engine socket gives engine_unavailable for login, pull and canary", async () => {
    const cred = credential(services.token.host, "someone", "some-password-1");
    const path = MISSING_SOCKET.slice("unix://".length);
    const expected = `Docker engine ${MISSING_SOCKET} unavailable: connect ENOENT ${path}`;
    for (const [kind, target] of [
      ["login", services.token.host],
      ["pull", services.token.image],
      ["canary", "local"],
    ] as const) {
      const result = await probe(kind, probeContext({ target, credentials: [cred], dockerHost: MISSING_SOCKET }));
      expect([kind, result.reason, result.error]).toEqual([kind, "engine_unavailable", expected]);
    }
  });
});

describe("local canary", () => {
  test("a canary job with a valid credential pulls, runs, is removed, and reports its four stages", async () => {
    const user = await gitlabUser();
    const creds = [credential(services.token.host, user.username, user.password)];
    const p = probeContext({ target: "local", credentials: creds, local: { expectOutput: "canary-ok" } });
    const result = await probe("canary", p);
    expect(summary(result)).toEqual({ probe: "canary", target: "local", success: true, reason: undefined, error: undefined });
    expect(Object.keys(result.stages ?? {})).toEqual(["pull", "create", "start", "run"]);
    // Each stage took time, and together they fit inside the probe's own duration.
    const stages = Object.values(result.stages ?? {});
    for (const seconds of stages) expect(seconds).toBeGreaterThan(0);
    expect(stages.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(result.durationSeconds);
    const logged = p.logged.map((line) => JSON.parse(line) as { msg: string; stages?: Record<string, number> });
    expect(logged.find((l) => l.msg === "canary stages")?.stages).toEqual(result.stages);
    expectLogLine(result.log, /canary stages: pull \d+\.\d{3}s, create \d+\.\d{3}s, start \d+\.\d{3}s, run \d+\.\d{3}s$/);
  });

  test("after the user is blocked the canary fails with unauthorized at its pull, though the image is cached", async () => {
    const user = await gitlabUser();
    const creds = [credential(services.token.host, user.username, user.password)];
    expect((await probe("canary", probeContext({ target: "local", credentials: creds }))).success).toBe(true);
    await block(user.username);
    const result = await probe("canary", probeContext({ target: "local", credentials: creds }));
    expect([result.reason, result.error]).toEqual([
      "unauthorized",
      `pull ${services.token.image}: Head "http://${services.token.host}/v2/ci/canary/manifests/latest": unauthorized: ${ACCESS_DENIED_MESSAGE}`,
    ]);
    expect(Object.keys(result.stages ?? {})).toEqual(["pull"]);
  });

  test("a canary command exiting 3 fails with container_failed and its last output line", async () => {
    const user = await gitlabUser();
    const creds = [credential(services.token.host, user.username, user.password)];
    // The daemon copies stdout and stderr concurrently: lines written at the same instant may swap, so a pause orders them.
    const command = ["sh", "-c", "echo first line; sleep 0.3; echo 'cannot reach cache' >&2; exit 3"];
    const result = await probe("canary", probeContext({ target: "local", credentials: creds, local: { command } }));
    expect([result.reason, result.error]).toEqual(["container_failed", "canary container exited 3: cannot reach cache"]);
  });

  test("a canary whose output lacks the expected line fails with container_failed", async () => {
    const user = await gitlabUser();
    const creds = [credential(services.token.host, user.username, user.password)];
    const result = await probe("canary", probeContext({ target: "local", credentials: creds, local: { expectOutput: "all good" } }));
    expect([result.reason, result.error]).toEqual([
      "container_failed",
      'canary container exited 0 without an output line containing "all good": canary-ok',
    ]);
  });

  test("a canary sleeping past its deadline is killed and removed, with reason timeout", async () => {
    const user = await gitlabUser();
    const creds = [credential(services.token.host, user.username, user.password)];
    const t0 = performance.now();
    const result = await probe(
      "canary",
      probeContext({ target: "local", credentials: creds, timeoutMs: 2_500, local: { command: ["sleep", "60"] } }),
    );
    expect(result.reason).toBe("timeout");
    expect(result.error).toMatch(
      /^timed out after \d+ms \(canary container [0-9a-f]{12} still running at the deadline: killed and removed\)$/,
    );
    expect(performance.now() - t0).toBeLessThan(12_000);
    expectLogLine(result.log, /removed canary container [0-9a-f]{12}$/);
  });

  test("removeCanaryContainers removes every labelled container, running or not, and leaves others", async () => {
    const labelled = ["--label", "io.ci-prober.canary=true", "--network", "none", services.localImage, "sleep", "60"];
    await docker("create", ...labelled);
    await docker("run", "-d", ...labelled);
    const other = (await docker("create", "--network", "none", services.localImage, "true")).trim();
    const removed = await removeCanaryContainers(services.dockerHost, AbortSignal.timeout(20_000));
    expect(removed).toBe(2);
    expect((await docker("ps", "-a", "-q", "--no-trunc", "--filter", `id=${other}`)).trim()).toBe(other);
    await docker("rm", other);
  });
});

describe("secrets", () => {
  test("neither the credential nor the X-Registry-Auth header appears in logs, errors or results", async () => {
    const user = await gitlabUser();
    const cred = credential(services.token.host, user.username, user.password);
    const header = registryAuthHeader(engineAuth(cred));
    const forbidden = [
      user.password,
      header,
      Buffer.from(`${user.username}:${user.password}`).toString("base64"),
      Buffer.from(JSON.stringify(engineAuth(cred))).toString("base64"),
    ];
    const runs: { result: ProbeResult; logged: string[] }[] = [];
    const all = async () => {
      for (const [kind, target] of [
        ["login", services.token.host],
        ["pull", services.token.image],
        ["canary", "local"],
      ] as const) {
        const p = probeContext({ target, credentials: [cred] });
        runs.push({ result: await probe(kind, p), logged: p.logged });
      }
    };
    await all();
    await block(user.username);
    await all();
    expect(runs.map((r) => r.result.success)).toEqual([true, true, true, false, false, false]);
    const text = JSON.stringify(runs);
    for (const value of forbidden) expect(text.includes(value)).toBe(false);
    expect(text.includes(user.username)).toBe(true);
  });
});
