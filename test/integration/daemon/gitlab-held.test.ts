import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, inject, test } from "vitest";
import { startDaemonProc, waitFor, type DaemonProc } from "../../helpers/daemon.js";
import { createApiToken, createGitlabUser, setGitlabUserState, tempDir } from "../../helpers/fixtures.js";
import { runCli } from "../../helpers/cli.js";
import { select, value } from "../../helpers/metrics.js";
import { freePort } from "../../services/procs.js";

// A departed engineer's personal token in a GitLab group variable: every project below the group pulls with it,
// and nothing on any runner host shows it. Three groups deep, 200 projects, on the shared fake GitLab.

const services = inject("services");
const INTERVAL_MS = 1000;
const registry = services.token.host;
const top = `held-${Date.now()}`;
const runner = `gitlab:group/${top}`;
const source = `${runner}#DOCKER_AUTH_CONFIG#auths["${registry}"]`;

let daemon: DaemonProc;
let yamada: { username: string; password: string };
let configFile: string;

async function control(path: string, body: unknown): Promise<void> {
  const res = await fetch(`${services.gitlab.url}/-/test/${path}`, {
    method: "POST",
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  if (res.status >= 300) throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`);
}

beforeAll(async () => {
  const dir = tempDir("held");
  yamada = await createGitlabUser(services.gitlab.url, {
    username: `t.yamada-held-${Date.now()}`,
    password: `glpat-${Date.now()}-personal`,
  });
  const projects = Array.from({ length: 200 }, (_, i) => `${top}/platform/build/app-${String(i).padStart(3, "0")}`);
  await control("tree", { projects });
  const value = JSON.stringify({
    auths: { [registry]: { auth: Buffer.from(`${yamada.username}:${yamada.password}`).toString("base64") } },
  });
  await control("variables", { holder: "group", path: top, key: "DOCKER_AUTH_CONFIG", value, masked: true });
  const tokenFile = join(dir, "gitlab-token");
  writeFileSync(tokenFile, `${await createApiToken(services.gitlab.url, "root")}\n`);
  const port = await freePort();
  configFile = join(dir, "ci-prober.yml");
  writeFileSync(
    configFile,
    [
      `interval: ${INTERVAL_MS}ms`,
      "timeout: 5s",
      `listen_address: 127.0.0.1:${port}`,
      `gitlab: {url: "${services.gitlab.url}", token_file: ${tokenFile}, interval: ${INTERVAL_MS}ms, requests_per_minute: 6000, registry: "${registry}", variables: ["${top}"]}`,
      "runners: []",
      "",
    ].join("\n"),
  );
  daemon = await startDaemonProc(configFile, port);
  await waitFor("ready", 20_000, async () => ((await daemon.get("/-/ready")).status === 200 ? true : undefined));
});

afterAll(async () => {
  await daemon?.stop();
});

test("the group's variable is probed as runner gitlab:group/<path>; blocking its owner flips owner state and login, and /status and / name the group and variable", async () => {
  const before = await waitFor("the holder's login and owner check", 20_000, async () => {
    const m = await daemon.metrics();
    return select(m, "ci_prober_login_success", { runner, registry }).length === 1 &&
      select(m, "ci_prober_credential_owner_state", { runner, state: "active" }).length === 1
      ? m
      : undefined;
  });
  expect(value(before, "ci_prober_login_success", { runner, registry })).toBe(1);
  // gitlab.registry names the token registry as GitLab's own: the group's personal token hides the job token there, the shape of
  // the incident. The jobs still get their job token for the dependency proxy (the instance's own host:port), last.
  const proxy = new URL(services.gitlab.url).host;
  const jobToken = (path: string) => `CI_JOB_TOKEN#registry["${path}"]`;
  expect(select(before, "ci_prober_credential_info", { runner }).map((s) => s.labels)).toEqual([
    { runner, registry, source, username: yamada.username, kind: "personal", in_use: "true" },
    { runner, registry, source: jobToken(registry), username: "gitlab-ci-token", kind: "job_token", in_use: "false" },
    { runner, registry: proxy, source: jobToken(proxy), username: "gitlab-ci-token", kind: "job_token", in_use: "true" },
  ]);
  expect(
    select(before, "ci_prober_credential_shadows_job_token")
      .filter((s) => s.labels.runner === runner)
      .map((s) => [s.labels, s.value]),
  ).toEqual([[{ runner, registry, source }, 1]]);
  const status = JSON.parse((await daemon.get("/status")).body) as {
    gitlab_variables: { runner: string; source: string; effective_projects: number; projects: string[] }[];
  };
  const view = status.gitlab_variables.find((v) => v.runner === runner);
  expect(view && { ...view, projects: view.projects.length }).toEqual({
    runner,
    source: `${runner}#DOCKER_AUTH_CONFIG`,
    environment_scope: "*",
    masked: true,
    hidden: false,
    protected: false,
    variable_type: "env_var",
    effective_projects: 200,
    projects: 20,
    hidden_by: null,
    unreadable: null,
  });

  await setGitlabUserState(services.gitlab.url, yamada.username, "blocked");
  const after = await waitFor("blocked owner and failed login", 15_000, async () => {
    const m = await daemon.metrics();
    return select(m, "ci_prober_credential_owner_state", { runner, state: "blocked" }).length === 1 &&
      value(m, "ci_prober_login_success", { runner, registry }) === 0
      ? m
      : undefined;
  });
  expect(
    value(after, "ci_prober_probe_failures_total", { probe: "login", runner, target: registry, reason: "unauthorized" }),
  ).toBeGreaterThanOrEqual(1);
  const page = (await daemon.get("/")).body;
  expect(page).toContain(
    `<span class="badge bad">unauthorized</span> <b>login</b> <span class="runner">${runner}</span> → <code>${registry}</code>`,
  );
  expect(page).toContain(`from <code>${runner}#DOCKER_AUTH_CONFIG#auths[&#34;${registry}&#34;]</code>`);
  expect(page).toContain(
    `<td>${runner}</td><td><code>${runner}#DOCKER_AUTH_CONFIG</code></td><td>*</td><td>200: ${top}/platform/build/app-000`,
  );
  for (const text of [page, (await daemon.get("/status")).body, (await daemon.get("/metrics")).body])
    expect(text).not.toContain(yamada.password);
});

test("credentials --gitlab lists the variable's credential with its holder and source, never its secret", async () => {
  // One project listed: its groups up the chain are read, not the 200 projects (the suite's other tests share this GitLab).
  const one = join(tempDir("held-cli"), "ci-prober.yml");
  writeFileSync(one, readFileSync(configFile, "utf8").replace(`variables: ["${top}"]`, `variables: ["${top}/platform/build/app-000"]`));
  const r = await runCli(["credentials", "--config", one, "--gitlab", "--json"]);
  const rows = JSON.parse(r.stdout) as {
    runner: string;
    registry: string;
    username: string;
    source: string;
    in_use: boolean;
    shadowed_by: string | null;
  }[];
  const proxy = new URL(services.gitlab.url).host;
  expect(
    rows.filter((row) => row.runner === runner).map((row) => [row.registry, row.username, row.source, row.in_use, row.shadowed_by]),
  ).toEqual([
    [registry, yamada.username, source, true, null],
    [registry, "gitlab-ci-token", `CI_JOB_TOKEN#registry["${registry}"]`, false, source],
    [proxy, "gitlab-ci-token", `CI_JOB_TOKEN#registry["${proxy}"]`, true, null],
  ]);
  expect(rows.find((row) => row.source === source)).toMatchObject({ shadows_job_token: true });
  expect(r.stdout).not.toContain(yamada.password);
  const table = await runCli(["credentials", "--config", one, "--gitlab"]);
  const line = table.stdout.split("\n").find((l) => l.startsWith(`${runner} `) && l.includes(yamada.username));
  expect(line?.replace(/ +/g, " ")).toBe(
    `${runner} ${registry} ${yamada.username} personal password yes ${source} (shadows the job token)`,
  );
});
