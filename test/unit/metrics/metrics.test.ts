import { describe, expect, test } from "vitest";
import { Metrics } from "../../../src/metrics/index.js";
import { gitlabCanarySeries, loginSeries, pullSeries } from "../../../src/probes/index.js";
import { taskKey } from "../../../src/task-key.js";
import { assertOneInUse, metricSamples, probeResult, select } from "../../helpers/metrics.js";

const result = probeResult;
const samples = metricSamples;

describe("Metrics", () => {
  test("a failed login sets success 0, counts the reason, and stamps the last run", async () => {
    const m = new Metrics();
    loginSeries(m, taskKey("login", "r1", "registry.example.jp"), result({ success: false, reason: "unauthorized" }));
    const s = await samples(m);
    expect(select(s, "ci_prober_login_success").map((x) => [x.labels, x.value])).toEqual([
      [{ runner: "r1", registry: "registry.example.jp" }, 0],
    ]);
    expect(select(s, "ci_prober_probe_failures_total").map((x) => [x.labels, x.value])).toEqual([
      [{ probe: "login", runner: "r1", target: "registry.example.jp", reason: "unauthorized" }, 1],
    ]);
    expect(select(s, "ci_prober_probe_last_run_timestamp_seconds").map((x) => x.value)).toEqual([1_800_000_000.2]);
    expect(select(s, "ci_prober_login_duration_seconds_count").map((x) => x.value)).toEqual([1]);
  });

  test("drop() removes every series of a vanished task, and only those", async () => {
    const m = new Metrics();
    const image = "registry.example.jp/ci/a:1";
    pullSeries(m, taskKey("pull", "r1", image), result({ probe: "pull", target: image, success: false, reason: "not_found" }));
    pullSeries(m, taskKey("pull", "r2", image), result({ probe: "pull", runner: "r2", target: image, bytes: 42 }));
    m.drop(taskKey("pull", "r1", image));
    const s = await samples(m);
    expect(s.filter((x) => x.labels.runner === "r1")).toEqual([]);
    expect(select(s, "ci_prober_pull_bytes").map((x) => [x.labels, x.value])).toEqual([
      [{ runner: "r2", image: "registry.example.jp/ci/a:1", pull: "full" }, 42],
    ]);
  });

  test("a GitLab canary that could not create its pipeline reads 0 under runner none with its reason, counted once", async () => {
    const m = new Metrics();
    gitlabCanarySeries(
      m,
      taskKey("gitlab_canary", "gitlab", "ci/canary"),
      result({ probe: "canary", runner: "gitlab", target: "ci/canary", success: false, reason: "unauthorized" }),
    );
    const s = await samples(m);
    expect(select(s, "ci_prober_canary_success").map((x) => [x.labels, x.value])).toEqual([[{ runner: "none", canary: "ci/canary" }, 0]]);
    expect(select(s, "ci_prober_probe_failures_total").map((x) => [x.labels, x.value])).toEqual([
      [{ probe: "canary", runner: "none", target: "ci/canary", reason: "unauthorized" }, 1],
    ]);
  });

  test("setCredentials replaces a runner's credential_info series; owner facts carry state and expiry", async () => {
    const m = new Metrics();
    const cred = {
      runner: "r1",
      registry: "registry.example.jp",
      username: "t.yamada",
      secretType: "password" as const,
      kind: "personal" as const,
      source: '/home/gitlab-runner/.docker/config.json#auths["registry.example.jp"]',
    };
    m.setCredentials("r1", [cred]);
    m.setCredentials("r1", [{ ...cred, username: "gitlab+deploy-token-3", kind: "deploy_token" }]);
    m.setOwnerFacts(taskKey("credential_check", "r1", "registry.example.jp"), {
      runner: "r1",
      registry: "registry.example.jp",
      username: "gitlab+deploy-token-3",
      state: "active",
      expiresAt: 1_900_000_000,
    });
    const s = await samples(m);
    expect(select(s, "ci_prober_credential_info").map((x) => x.labels)).toEqual([
      {
        runner: "r1",
        registry: "registry.example.jp",
        source: cred.source,
        username: "gitlab+deploy-token-3",
        kind: "deploy_token",
        in_use: "false",
      },
    ]);
    expect(select(s, "ci_prober_credential_owner_state").map((x) => x.labels.state)).toEqual(["active"]);
    expect(select(s, "ci_prober_credential_expiry_timestamp_seconds").map((x) => x.value)).toEqual([1_900_000_000]);
  });

  test("credential_info labels a path key with its path, in_use true or false, and a winner at GitLab's registry shadows the job token", async () => {
    const m = new Metrics();
    const base = { runner: "r1", username: "u", secretType: "password" as const, kind: "unknown" as const };
    const host = {
      ...base,
      registry: "registry.example.jp",
      path: "registry.example.jp",
      source: 'F#auths["registry.example.jp"]',
      inUse: true,
    };
    const team = {
      ...base,
      registry: "registry.example.jp",
      path: "registry.example.jp/team-a",
      source: 'F#auths["registry.example.jp/team-a"]',
      inUse: true,
    };
    const job = {
      ...base,
      username: "gitlab-ci-token",
      kind: "job_token" as const,
      registry: "registry.example.jp",
      path: "registry.example.jp",
      source: 'CI_JOB_TOKEN#registry["registry.example.jp"]',
      inUse: false,
    };
    m.setCredentials("r1", [host, team, job], ["registry.example.jp"]);
    const s = assertOneInUse(await samples(m));
    expect(select(s, "ci_prober_credential_info").map((x) => [x.labels.registry, x.labels.source, x.labels.in_use])).toEqual([
      ["registry.example.jp", host.source, "true"],
      ["registry.example.jp/team-a", team.source, "true"],
      ["registry.example.jp", job.source, "false"],
    ]);
    // Both keys win over the job token: the host for every image, the path key for team-a's.
    expect(select(s, "ci_prober_credential_shadows_job_token").map((x) => x.labels)).toEqual([
      { runner: "r1", registry: "registry.example.jp", source: host.source },
      { runner: "r1", registry: "registry.example.jp/team-a", source: team.source },
    ]);
    expect(() =>
      assertOneInUse(s.map((x) => (x.labels.source === job.source ? { ...x, labels: { ...x.labels, in_use: "true" } } : x))),
    ).toThrow('exactly one in_use="true" per (runner, registry): r1 registry.example.jp: 2 in use');
  });
});
