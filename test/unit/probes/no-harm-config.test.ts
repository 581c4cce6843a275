import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { loadConfigFile } from "../../../src/config/read.js";
import { InputError } from "../../../src/errors.js";

const dir = mkdtempSync(join(tmpdir(), "ci-prober-noharm-config-"));
let n = 0;
function file(yaml: string): string {
  const f = join(dir, `c${n++}.yml`);
  writeFileSync(f, yaml);
  return f;
}

describe("no-harm settings in ci-prober.yml", () => {
  test("full_pull_interval (top level, per runner, per registry), auth_backoff and gitlab.requests_per_minute are read", () => {
    const config = loadConfigFile(
      file(
        [
          "full_pull_interval: 2h",
          "auth_backoff: {max_pause: 20m, max_failures: 5, window: 1m}",
          "gitlab: {url: http://127.0.0.1:1, requests_per_minute: 30}",
          "registries:",
          "  docker.io: {full_pull_interval: 0s}",
          "runners:",
          "  - {name: a, full_pull_interval: 30m}",
          "",
        ].join("\n"),
      ),
    );
    expect(config.fullPullIntervalMs).toBe(2 * 3_600_000);
    expect(config.authBackoff).toEqual({ capMs: 20 * 60_000, maxFailures: 5, windowMs: 60_000 });
    expect(config.gitlab?.requestsPerMinute).toBe(30);
    expect(config.registries["docker.io"]?.fullPullIntervalMs).toBe(0);
    expect(config.runners[0]?.fullPullIntervalMs).toBe(30 * 60_000);
  });

  test("left out: the backoff is 10m, 10 failures per 3m; 60 GitLab requests a minute; no full_pull_interval written", () => {
    const config = loadConfigFile(file("gitlab: {url: http://127.0.0.1:1}\n"));
    expect(config.authBackoff).toEqual({ capMs: 10 * 60_000, maxFailures: 10, windowMs: 3 * 60_000 });
    expect(config.gitlab?.requestsPerMinute).toBe(60);
    expect(config.fullPullIntervalMs).toBeUndefined();
  });

  test.each([
    ["full_pull_interval: hourly\n", 'full_pull_interval: expected a duration like 30s, got "hourly"'],
    ["auth_backoff: {max_pause: soon}\n", 'auth_backoff.max_pause: expected a duration like 30s, got "soon"'],
    ["auth_backoff: {retries: 3}\n", "auth_backoff.retries: unknown key"],
    ["auth_backoff: {max_failures: 0}\n", "auth_backoff.max_failures: expected an integer of at least 1"],
    ["gitlab: {url: http://127.0.0.1:1, requests_per_minute: 0}\n", "gitlab.requests_per_minute: expected an integer of at least 1"],
    ["runners:\n  - {name: a, full_pull_interval: often}\n", 'runners[0].full_pull_interval: expected a duration like 30s, got "often"'],
  ])("%j is rejected: %s", (yaml, message) => {
    const f = file(yaml);
    expect(() => loadConfigFile(f)).toThrow(InputError);
    expect(() => loadConfigFile(f)).toThrow(`${f}: ${message}`);
  });
});
