import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { runCli } from "../../helpers/cli.js";

const dir = mkdtempSync(join(tmpdir(), "ci-prober-config-"));
const write = (name: string, text: string) => {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
};

describe("check-config rejects bad ci-prober.yml with one line naming the file and key, exit 2", () => {
  const cases: { name: string; yaml: string; message: (file: string) => string; env?: Record<string, string> }[] = [
    {
      name: "yaml-syntax",
      yaml: "interval: 1m\nrunners: [\n",
      message: (f) =>
        `${f}: line 3 column 1: invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]`,
    },
    { name: "unknown-key", yaml: "interval: 1m\nintervall: 2m\n", message: (f) => `${f}: intervall: unknown key` },
    {
      name: "unknown-nested-key",
      yaml: "runners:\n  - name: a\n    docker_cfg: /x\n",
      message: (f) => `${f}: runners[0].docker_cfg: unknown key`,
    },
    {
      name: "bad-duration",
      yaml: "runners:\n  - name: a\n  - name: b\n    interval: soon\n",
      message: (f) => `${f}: runners[1].interval: expected a duration like 30s, got "soon"`,
    },
    { name: "number-duration", yaml: "timeout: 30\n", message: (f) => `${f}: timeout: expected a duration like 30s, got 30` },
    { name: "wrong-type", yaml: "concurrency: many\n", message: (f) => `${f}: concurrency: expected number, got "many"` },
    {
      name: "bad-mode",
      yaml: "runners:\n  - name: a\n    mode: remote\n",
      message: (f) => `${f}: runners[0].mode: expected "engine" or "direct", got "remote"`,
    },
    {
      name: "both-kinds",
      yaml: "runners:\n  - name: a\n    runner_config: /etc/x.toml\n",
      message: (f) => `${f}: runners[0]: expected exactly one of runner_config or name`,
    },
    {
      name: "missing-file",
      yaml: "runners:\n  - runner_config: /nonexistent/config.toml\n",
      message: (f) => `${f}: runners[0].runner_config: file /nonexistent/config.toml does not exist`,
    },
    {
      name: "missing-token-file",
      yaml: "gitlab: {url: http://127.0.0.1:1, token_file: /nonexistent/token}\n",
      message: (f) => `${f}: gitlab.token_file: file /nonexistent/token does not exist`,
    },
    {
      name: "missing-env",
      yaml: 'gitlab: {url: http://127.0.0.1:1, token: "${CI_PROBER_TEST_UNSET}"}\n',
      message: (f) => `${f}: gitlab.token: environment variable CI_PROBER_TEST_UNSET is not set`,
    },
    {
      name: "bad-image",
      yaml: 'images: ["Registry.example.jp/CI:latest"]\n',
      message: (f) =>
        `${f}: images[0]: expected an image reference like registry.example.jp/ci/canary:latest, got "Registry.example.jp/CI:latest"`,
    },
    {
      name: "bad-cron",
      yaml: "schedule: every minute\n",
      message: (f) => `${f}: schedule: expected a cron expression like */5 * * * * (node-cron syntax)`,
    },
    {
      name: "both-schedules",
      yaml: 'interval: 1m\nschedule: "* * * * *"\n',
      message: (f) => `${f}: schedule: expected either interval or schedule, not both`,
    },
    {
      name: "duplicate-runner",
      yaml: "runners:\n  - name: a\n  - name: a\n",
      message: (f) => `${f}: runners[1].name: "a" is already used by runners[0]`,
    },
    { name: "bad-listen", yaml: "listen_address: 9839\n", message: (f) => `${f}: listen_address: expected string, got 9839` },
    { name: "top-level-list", yaml: "- a\n", message: (f) => `${f}: expected a mapping of settings at the top level` },
  ];
  test.each(cases)("$name", async ({ name, yaml, message }) => {
    const file = write(`${name}.yml`, yaml);
    const r = await runCli(["check-config", "--config", file]);
    expect({ code: r.code, stderr: r.stderr, stdout: r.stdout }).toEqual({ code: 2, stderr: `ci-prober: ${message(file)}\n`, stdout: "" });
  });

  test("a config file that does not exist", async () => {
    const r = await runCli(["check-config", "--config", join(dir, "absent.yml")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`ci-prober: ${join(dir, "absent.yml")}: cannot read: no such file\n`);
  });
});

describe("command line", () => {
  test("--version prints the package version on every command", async () => {
    for (const args of [["--version"], ["once", "--version"], ["credentials", "--version"]]) {
      const r = await runCli(args);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`ci-prober 0.1.0 (node ${process.version})\n`);
    }
  });

  test("--help lists the commands and exits 0", async () => {
    const r = await runCli(["check-config", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("  check-config   validate the config and print the resolved runners\n");
  });

  test("an unknown command or flag exits 2 with usage on stderr", async () => {
    const a = await runCli(["probe"]);
    expect(a.code).toBe(2);
    expect(a.stderr.split("\n")[0]).toBe('ci-prober: unknown command "probe"');
    const b = await runCli(["once", "--jsn"]);
    expect(b.code).toBe(2);
    expect(b.stderr.split("\n")[0]).toBe("ci-prober: unknown option --jsn");
  });

  test("--config defaults to $CI_PROBER_CONFIG", async () => {
    const file = write("from-env.yml", "bogus: 1\n");
    const r = await runCli(["check-config"], { env: { CI_PROBER_CONFIG: file } });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`ci-prober: ${file}: bogus: unknown key\n`);
  });

  test("./ci-prober.yml is used when present", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "ci-prober-cwd-"));
    writeFileSync(join(cwd, "ci-prober.yml"), "interval: never\n");
    const r = await runCli(["check-config"], { cwd });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`ci-prober: ${join(cwd, "ci-prober.yml")}: interval: expected a duration like 30s, got "never"\n`);
  });
});
