import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, inject, test } from "vitest";
import { runCli } from "../../helpers/cli.js";
import { createApiToken, createGitlabUser, tempDir, writeDockerConfig } from "../../helpers/fixtures.js";

const services = inject("services");
const alice = { username: "alice", password: services.htpasswd.users.alice ?? "" };
const HELPERS = fileURLToPath(new URL("../../fixtures/credentials/bin", import.meta.url));

function config(dir: string, lines: string[]): string {
  const file = join(dir, "ci-prober.yml");
  writeFileSync(file, `${["timeout: 5s", "helper_timeout: 500ms", ...lines].join("\n")}\n`);
  return file;
}

describe("once", () => {
  test("--json prints one object per probe and exits 0 when all pass", async () => {
    const dir = tempDir("once-ok");
    const docker = writeDockerConfig(join(dir, "docker"), { [services.htpasswd.host]: alice });
    const file = config(dir, ["runners:", `  - {name: r1, docker_config: ${docker}, images: ["${services.htpasswd.image}"]}`]);
    const r = await runCli(["once", "--config", file, "--json"]);
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as Record<string, unknown>[];
    expect(rows.map((row) => ({ ...row, duration_seconds: typeof row.duration_seconds }))).toEqual([
      {
        probe: "login",
        runner: "r1",
        target: services.htpasswd.host,
        success: true,
        reason: null,
        duration_seconds: "number",
        error: null,
      },
      {
        probe: "pull",
        runner: "r1",
        target: services.htpasswd.image,
        success: true,
        reason: null,
        duration_seconds: "number",
        error: null,
      },
    ]);
    expect(r.stderr).toBe("");
  });

  test("a wrong password exits 1 and the table names the reason", async () => {
    const dir = tempDir("once-bad");
    const docker = writeDockerConfig(join(dir, "docker"), { [services.htpasswd.host]: { username: "alice", password: "wrong-pw-3b8e" } });
    const file = config(dir, ["runners:", `  - {name: r1, docker_config: ${docker}, images: []}`]);
    const r = await runCli(["once", "--config", file]);
    expect(r.code).toBe(1);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^RUNNER +PROBE +TARGET +RESULT +DURATION +ERROR$/);
    expect(lines[1]).toMatch(
      new RegExp(
        `^r1 +login +${services.htpasswd.host.replace(/\./g, "\\.")} +unauthorized +\\d+\\.\\d{3}s +GET http://${services.htpasswd.host.replace(/\./g, "\\.")}/v2/: HTTP 401`,
      ),
    );
    expect(lines).toHaveLength(2);
    expect(r.stdout.includes("wrong-pw-3b8e")).toBe(false);
  });

  test("a broken config.json of one runner exits 1 naming the file; the other runner is still probed", async () => {
    const dir = tempDir("once-broken");
    const good = writeDockerConfig(join(dir, "good"), { [services.htpasswd.host]: alice });
    mkdirSync(join(dir, "broken"));
    const broken = join(dir, "broken", "config.json");
    writeFileSync(broken, `{"auths": {"${services.htpasswd.host}": {"auth": "YWxp`);
    const file = config(dir, [
      "runners:",
      `  - {name: good, docker_config: ${good}, images: ["${services.htpasswd.image}"]}`,
      `  - {name: broken, docker_config: ${broken}, images: ["${services.htpasswd.image}"]}`,
    ]);
    const r = await runCli(["once", "--config", file, "--json"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`ci-prober: ${broken}: invalid JSON at line 1 column 45: Unterminated string\n`);
    const rows = JSON.parse(r.stdout) as { runner: string; probe: string; success: boolean; reason: string | null }[];
    expect(rows.map((row) => [row.runner, row.probe, row.success, row.reason])).toEqual([
      ["broken", "login", false, "credential_invalid"],
      ["broken", "pull", false, "credential_invalid"],
      ["good", "login", true, null],
      ["good", "pull", true, null],
    ]);
  });

  test("a credential helper that is missing, hangs or prints garbage is a helper_failed row and exit 1; the other runner passes", async () => {
    const dir = tempDir("once-helpers");
    const good = writeDockerConfig(join(dir, "good"), { [services.htpasswd.host]: alice });
    const helpers = join(dir, "helpers.json");
    writeFileSync(
      helpers,
      JSON.stringify({ credHelpers: { "127.0.0.1:7": "cipt-missing", "127.0.0.1:8": "ciptsleep", "127.0.0.1:9": "cipt" } }),
    );
    writeFileSync(join(dir, "store.json"), JSON.stringify({ servers: { "127.0.0.1:9": { garbage: "Segmentation fault" } } }));
    const file = config(dir, ["runners:", `  - {name: good, docker_config: ${good}}`, `  - {name: helpers, docker_config: ${helpers}}`]);
    const env = { PATH: `${HELPERS}:${process.env.PATH ?? ""}`, CIPT_STORE: join(dir, "store.json") };
    const r = await runCli(["once", "--config", file, "--json"], { env });
    const src = (host: string) => `${helpers}#credHelpers["${host}"]`;
    const messages = [
      `${src("127.0.0.1:7")}: docker-credential-cipt-missing is not installed (not found on PATH)`,
      `${src("127.0.0.1:8")}: docker-credential-ciptsleep get gave no answer within 500ms`,
      `${src("127.0.0.1:9")}: docker-credential-cipt get printed no credential-helper JSON`,
    ];
    expect(r.code).toBe(1);
    expect(r.stderr.split("\n").filter(Boolean).sort()).toEqual(messages.map((m) => `ci-prober: ${m}`));
    const rows = JSON.parse(r.stdout) as { runner: string; probe: string; target: string; reason: string | null; error: string | null }[];
    expect(rows.map((row) => [row.runner, row.probe, row.target, row.reason, row.error])).toEqual([
      ["good", "login", services.htpasswd.host, null, null],
      ["helpers", "login", "127.0.0.1:7", "helper_failed", `credential for 127.0.0.1:7: ${messages[0]}`],
      ["helpers", "login", "127.0.0.1:8", "helper_failed", `credential for 127.0.0.1:8: ${messages[1]}`],
      ["helpers", "login", "127.0.0.1:9", "helper_failed", `credential for 127.0.0.1:9: ${messages[2]}`],
    ]);
  });
});

describe("credentials and check-config: a runner's broken source exits 1 with one line naming the file, no stack", () => {
  const cases: { name: string; setup: (dir: string) => { docker: string; message: string } }[] = [
    {
      name: "truncated JSON",
      setup: (dir) => {
        const docker = join(dir, "config.json");
        writeFileSync(docker, '{"auths": {"registry.example.jp": {"auth": "dXNlcjpwYXNz"}');
        return { docker, message: `${docker}: invalid JSON at line 1 column 59: Expected ',' or '}' after property value` };
      },
    },
    {
      name: "auth that is not base64",
      setup: (dir) => {
        const docker = join(dir, "config.json");
        writeFileSync(docker, JSON.stringify({ auths: { "registry.example.jp": { auth: "not*base64!" } } }));
        return { docker, message: `${docker}#auths["registry.example.jp"]: auth is not valid base64` };
      },
    },
    {
      name: "missing helper",
      setup: (dir) => {
        const docker = join(dir, "config.json");
        writeFileSync(docker, JSON.stringify({ credHelpers: { "registry.example.jp": "cipt-missing" } }));
        return {
          docker,
          message: `${docker}#credHelpers["registry.example.jp"]: docker-credential-cipt-missing is not installed (not found on PATH)`,
        };
      },
    },
    {
      name: "hanging helper",
      setup: (dir) => {
        const docker = join(dir, "config.json");
        writeFileSync(docker, JSON.stringify({ credHelpers: { "registry.example.jp": "ciptsleep" } }));
        return {
          docker,
          message: `${docker}#credHelpers["registry.example.jp"]: docker-credential-ciptsleep get gave no answer within 500ms`,
        };
      },
    },
    {
      name: "helper printing garbage",
      setup: (dir) => {
        const docker = join(dir, "config.json");
        writeFileSync(docker, JSON.stringify({ credHelpers: { "registry.example.jp": "cipt" } }));
        writeFileSync(join(dir, "store.json"), JSON.stringify({ servers: { "registry.example.jp": { garbage: "Segmentation fault" } } }));
        return {
          docker,
          message: `${docker}#credHelpers["registry.example.jp"]: docker-credential-cipt get printed no credential-helper JSON`,
        };
      },
    },
  ];
  test.each(cases)("$name", async ({ setup }) => {
    const dir = tempDir("bad-cred");
    const { docker, message } = setup(dir);
    const file = config(dir, ["runners:", `  - {name: r1, docker_config: ${docker}}`]);
    const env = { PATH: `${HELPERS}:${process.env.PATH ?? ""}`, CIPT_STORE: join(dir, "store.json") };
    for (const command of ["credentials", "check-config"]) {
      const r = await runCli([command, "--config", file], { env });
      expect({ command, code: r.code, stderr: r.stderr }).toEqual({ command, code: 1, stderr: `ci-prober: ${message}\n` });
      expect(r.ms).toBeLessThan(5000);
    }
  });

  test("a malformed config.toml exits 1 naming the file and position; the hand-written runner still lists", async () => {
    const dir = tempDir("bad-toml");
    const toml = join(dir, "config.toml");
    writeFileSync(toml, '[[runners]]\n  name = "a\n');
    const docker = writeDockerConfig(join(dir, "docker"), { "registry.example.jp": { username: "bob", password: "bob-pw-77" } });
    const file = config(dir, ["runners:", `  - {runner_config: ${toml}}`, `  - {name: by-hand, docker_config: ${docker}}`]);
    const r = await runCli(["credentials", "--config", file, "--json"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^ci-prober: ${toml.replace(/[.]/g, "\\.")}: line 2 column \\d+: invalid TOML: .+\\n$`));
    expect(JSON.parse(r.stdout)).toEqual([
      {
        runner: "by-hand",
        registry: "registry.example.jp",
        username: "bob",
        kind: "unknown",
        secret_type: "password",
        source: `${docker}#auths["registry.example.jp"]`,
        in_use: true,
        shadowed_by: null,
      },
    ]);
  });
});

describe("embedded default: with no config file, this host's runners are discovered", () => {
  test("~/.gitlab-runner/config.toml and ~/.docker/config.json become runners with exact credential sources", async () => {
    const home = tempDir("home");
    mkdirSync(join(home, ".gitlab-runner"));
    const authConfig = JSON.stringify({
      auths: { "registry.example.jp": { auth: Buffer.from("gitlab+deploy-token-7:dt-secret-91").toString("base64") } },
    });
    writeFileSync(
      join(home, ".gitlab-runner", "config.toml"),
      [
        "concurrent = 4",
        "[[runners]]",
        '  name = "base-runner"',
        '  url = "https://gitlab.example.jp"',
        '  token = "glrt-not-a-real-token"',
        '  executor = "docker"',
        "  [runners.docker]",
        '    image = "registry.example.jp/ci/base:1"',
        "[[runners]]",
        '  name = "docker-ci"',
        '  executor = "docker"',
        `  environment = [${JSON.stringify(`DOCKER_AUTH_CONFIG=${authConfig}`)}]`,
        "  [runners.docker]",
        '    image = "registry.example.jp/ci/node:20"',
        "",
      ].join("\n"),
    );
    const docker = writeDockerConfig(join(home, ".docker"), {
      "https://registry.example.jp/v1/": { username: "t.yamada", password: "ldap-pw-5521" },
    });
    const env = { HOME: home, DOCKER_HOST: "unix:///nonexistent.sock" };
    const r = await runCli(["credentials", "--json"], { env, cwd: home });
    expect(r.code).toBe(0);
    const toml = join(home, ".gitlab-runner", "config.toml");
    const dac = `${toml}#runners[1].environment.DOCKER_AUTH_CONFIG#auths["registry.example.jp"]`;
    const file = `${docker}#auths["https://registry.example.jp/v1/"]`;
    const row = { registry: "registry.example.jp", secret_type: "password" };
    expect(JSON.parse(r.stdout)).toEqual([
      { ...row, runner: "base-runner", username: "t.yamada", kind: "unknown", source: file, in_use: true, shadowed_by: null },
      {
        ...row,
        runner: "docker-ci",
        username: "gitlab+deploy-token-7",
        kind: "deploy_token",
        source: dac,
        in_use: true,
        shadowed_by: null,
      },
      { ...row, runner: "docker-ci", username: "t.yamada", kind: "unknown", source: file, in_use: false, shadowed_by: dac },
    ]);
    const table = await runCli(["credentials"], { env, cwd: home });
    expect(table.stdout.split("\n").map((l) => l.replace(/ +/g, " "))).toEqual([
      "RUNNER REGISTRY USERNAME KIND SECRET IN USE SOURCE",
      `base-runner registry.example.jp t.yamada unknown password yes ${file}`,
      `docker-ci registry.example.jp gitlab+deploy-token-7 deploy_token password yes ${dac}`,
      `docker-ci registry.example.jp t.yamada unknown password no ${file} (shadowed by …config.toml#runners[1].environment.DOCKER_AUTH_CONFIG#auths["registry.example.jp"])`,
      "",
    ]);
    for (const secret of ["ldap-pw-5521", "dt-secret-91", "glrt-not-a-real-token"]) expect(r.stdout.includes(secret)).toBe(false);

    const c = await runCli(["check-config"], { env, cwd: home });
    expect(c.code).toBe(0);
    expect(c.stdout.split("\n").slice(0, 2)).toEqual([
      "config: embedded default (runners discovered on this host)",
      "probes: every 1m, timeout 30s, concurrency 8, listen 0.0.0.0:9839",
    ]);
    expect(c.stdout).toMatch(/base-runner +direct +unix:\/\/\/nonexistent\.sock/);
  });
});

describe("credentials with gitlab: configured asks the Users API who owns each credential", () => {
  test("a human's account is kind personal, a project bot is bot; a bad API token exits 1 naming GitLab", async () => {
    const dir = tempDir("cred-owner");
    const human = await createGitlabUser(services.gitlab.url, { username: `k.sato-${Date.now()}` });
    const bot = await createGitlabUser(services.gitlab.url, { username: `project_${Date.now() % 100000}_bot_ci`, bot: true });
    const docker = writeDockerConfig(join(dir, "docker"), { [services.token.host]: human, "registry.example.jp": bot });
    const tokenFile = join(dir, "token");
    writeFileSync(tokenFile, await createApiToken(services.gitlab.url, "root"));
    const file = config(dir, [
      `gitlab: {url: "${services.gitlab.url}", token_file: ${tokenFile}}`,
      "runners:",
      `  - {name: r1, docker_config: ${docker}}`,
    ]);
    const r = await runCli(["credentials", "--config", file, "--json"]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    // The job's own token is listed last, for the dependency proxy (the instance's own host:port): nothing stored shadows it.
    const proxy = new URL(services.gitlab.url).host;
    expect(
      (JSON.parse(r.stdout) as { username: string; kind: string; registry: string; in_use: boolean }[]).map((c) => [
        c.username,
        c.kind,
        c.registry,
        c.in_use,
      ]),
    ).toEqual([
      [human.username, "personal", services.token.host, true],
      [bot.username, "bot", "registry.example.jp", true],
      ["gitlab-ci-token", "job_token", proxy, true],
    ]);
    for (const secret of [human.password, bot.password]) expect(r.stdout.includes(secret)).toBe(false);

    writeFileSync(tokenFile, "glpat-not-a-valid-token-000");
    const bad = await runCli(["credentials", "--config", file, "--json"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr.split("\n")[0]).toBe(
      `ci-prober: ${services.gitlab.url}: owner of ${docker}#auths["${services.token.host}"]: GET /api/v4/users: HTTP 401: 401 Unauthorized`,
    );
    expect(bad.stderr.includes("glpat-not-a-valid-token-000")).toBe(false);
  });
});
