import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, inject, test } from "vitest";
import { freePort } from "../../services/procs.js";
import { AGED_ENV, startDaemonProc, waitFor, type DaemonProc } from "../../helpers/daemon.js";
import { createApiToken, createGitlabUser, setGitlabUserState, tempDir, writeDockerConfig } from "../../helpers/fixtures.js";
import { select, value } from "../../helpers/metrics.js";

// The incident of ../shared/seeds/, replayed: a runner's config.json holds a
// person's credential for the GitLab registry; the person's account is blocked.
// The daemon runs aged (gc() every 150 ms, test/support/aged-preload.cjs), as after weeks of running.

const services = inject("services");
const INTERVAL_MS = 1000;
const registry = services.token.host;
const image = services.token.image;

let daemon: DaemonProc;
let yamada: { username: string; password: string };
let deploy: { username: string; password: string };
let baseConfig: string;
let ciConfig: string;
let configFile: string;

beforeAll(async () => {
  const dir = tempDir("incident");
  yamada = await createGitlabUser(services.gitlab.url, { username: `t.yamada-${Date.now()}` });
  deploy = await createGitlabUser(services.gitlab.url, { username: `gitlab+deploy-token-${Date.now() % 100000}`, deployToken: true });
  baseConfig = writeDockerConfig(join(dir, "base-runner", ".docker"), { [registry]: yamada });
  ciConfig = writeDockerConfig(join(dir, "docker-ci", ".docker"), { [registry]: deploy });
  const port = await freePort();
  const tokenFile = join(dir, "gitlab-token");
  writeFileSync(tokenFile, `${await createApiToken(services.gitlab.url, "root")}\n`);
  configFile = join(dir, "ci-prober.yml");
  writeFileSync(
    configFile,
    [
      `interval: ${INTERVAL_MS}ms`,
      "timeout: 5s",
      "full_pull_interval: 0s",
      `listen_address: 127.0.0.1:${port}`,
      `images: ["${image}"]`,
      `gitlab: {url: "${services.gitlab.url}", token_file: ${tokenFile}, interval: ${INTERVAL_MS}ms}`,
      "runners:",
      `  - {name: base-runner, docker_config: ${baseConfig}, mode: direct}`,
      `  - {name: docker-ci, docker_config: ${ciConfig}, mode: direct}`,
      "",
    ].join("\n"),
  );
  daemon = await startDaemonProc(configFile, port, AGED_ENV);
  await waitFor("ready", 15_000, async () => ((await daemon.get("/-/ready")).status === 200 ? true : undefined));
});

afterAll(async () => {
  await daemon?.stop();
});

test("a blocked user's credential turns that runner's login and pull to 0 within two intervals, names the user and the file, and leaves the other runner at 1", async () => {
  const before = await daemon.metrics();
  expect(value(before, "ci_prober_login_success", { runner: "base-runner", registry })).toBe(1);
  expect(value(before, "ci_prober_pull_success", { runner: "base-runner", image })).toBe(1);
  expect(value(before, "ci_prober_login_success", { runner: "docker-ci", registry })).toBe(1);
  expect(value(before, "ci_prober_pull_bytes", { runner: "base-runner", image })).toBeGreaterThan(0);

  // The Users API says a human owns it: the credential is a personal one, and its owner is active.
  await waitFor("owner checks", 5000, async () => {
    const m = await daemon.metrics();
    return select(m, "ci_prober_credential_owner_state", { runner: "base-runner", state: "active" }).length === 1 &&
      select(m, "ci_prober_credential_info", { runner: "base-runner", kind: "personal" }).length === 1
      ? true
      : undefined;
  });

  await setGitlabUserState(services.gitlab.url, yamada.username, "blocked");
  const blockedAt = Date.now();
  const after = await waitFor("base-runner login and pull at 0", 10_000, async () => {
    const m = await daemon.metrics();
    return value(m, "ci_prober_login_success", { runner: "base-runner", registry }) === 0 &&
      value(m, "ci_prober_pull_success", { runner: "base-runner", image }) === 0
      ? m
      : undefined;
  });
  const elapsed = Date.now() - blockedAt;
  expect(elapsed).toBeLessThanOrEqual(2 * INTERVAL_MS + 500);

  expect(
    value(after, "ci_prober_probe_failures_total", { probe: "login", runner: "base-runner", target: registry, reason: "unauthorized" }),
  ).toBeGreaterThanOrEqual(1);
  expect(
    value(after, "ci_prober_probe_failures_total", { probe: "pull", runner: "base-runner", target: image, reason: "unauthorized" }),
  ).toBeGreaterThanOrEqual(1);
  expect(value(after, "ci_prober_login_success", { runner: "docker-ci", registry })).toBe(1);
  expect(value(after, "ci_prober_pull_success", { runner: "docker-ci", image })).toBe(1);
  expect(select(after, "ci_prober_probe_failures_total", { runner: "docker-ci" })).toEqual([]);
  // With gitlab: configured the job token is listed last, for the instance's dependency proxy (its own host:port).
  const proxy = new URL(services.gitlab.url).host;
  const jobToken = (runner: string) => ({
    runner,
    registry: proxy,
    source: `CI_JOB_TOKEN#registry["${proxy}"]`,
    username: "gitlab-ci-token",
    kind: "job_token",
    in_use: "true",
  });
  expect(select(after, "ci_prober_credential_info", { runner: "base-runner" }).map((s) => s.labels)).toEqual([
    {
      runner: "base-runner",
      registry,
      source: `${baseConfig}#auths["${registry}"]`,
      username: yamada.username,
      kind: "personal",
      in_use: "true",
    },
    jobToken("base-runner"),
  ]);
  expect(select(after, "ci_prober_credential_info", { runner: "docker-ci" }).map((s) => s.labels)).toEqual([
    {
      runner: "docker-ci",
      registry,
      source: `${ciConfig}#auths["${registry}"]`,
      username: deploy.username,
      kind: "deploy_token",
      in_use: "true",
    },
    jobToken("docker-ci"),
  ]);

  const owner = await waitFor("owner state blocked", 5000, async () => {
    const found = select(await daemon.metrics(), "ci_prober_credential_owner_state", { runner: "base-runner" });
    return found[0]?.labels.state === "blocked" ? found : undefined;
  });
  expect(owner.map((s) => s.labels)).toEqual([{ runner: "base-runner", registry, username: yamada.username, state: "blocked" }]);

  const status = JSON.parse((await daemon.get("/status")).body) as {
    probes: { key: string; last: { reason: string; error: string; log: string[]; credential: unknown } }[];
  };
  const login = status.probes.find((p) => p.key === `login|base-runner|${registry}`);
  expect(login?.last.reason).toBe("unauthorized");
  expect(login?.last.error).toContain("HTTP Basic: Access denied");
  expect(login?.last.credential).toEqual({
    registry,
    username: yamada.username,
    kind: "personal",
    secret_type: "password",
    source: `${baseConfig}#auths["${registry}"]`,
  });
  // The log line an operator greps for names the user and the file, too.
  const failed = daemon
    .log()
    .split("\n")
    .find((l) => l.includes('"msg":"probe failed"') && l.includes('"runner":"base-runner"'));
  expect(JSON.parse(failed ?? "{}")).toMatchObject({
    level: "warn",
    probe: expect.any(String),
    reason: "unauthorized",
    username: yamada.username,
    source: `${baseConfig}#auths["${registry}"]`,
  });
  const page = (await daemon.get("/")).body;
  expect(page).toContain(
    `credential <b>${yamada.username}</b> (personal, password) from <code>${baseConfig}#auths[&#34;${registry}&#34;]</code> · <span class="ok-text">in use</span>`,
  );

  // The fix: the account is active again (as if the file now held a working credential).
  await setGitlabUserState(services.gitlab.url, yamada.username, "active");
  await waitFor("base-runner login back at 1", 10_000, async () =>
    value(await daemon.metrics(), "ci_prober_login_success", { runner: "base-runner", registry }) === 1 ? true : undefined,
  );
});

test("no password or auth value reaches /metrics, /status, / or the log", async () => {
  const bodies = [(await daemon.get("/metrics")).body, (await daemon.get("/status")).body, (await daemon.get("/")).body, daemon.log()];
  for (const secret of [
    yamada.password,
    deploy.password,
    Buffer.from(`${yamada.username}:${yamada.password}`).toString("base64"),
    Buffer.from(`${deploy.username}:${deploy.password}`).toString("base64"),
  ]) {
    for (const body of bodies) expect(body.includes(secret)).toBe(false);
  }
  expect(daemon.log()).toContain('"msg":"probe failed"');
});

test("SIGTERM stops the daemon cleanly with exit 0", async () => {
  expect(await daemon.stop()).toBe(0);
});
