import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";
import { ciState } from "../../fake-gitlab/pipelines.js";
import { startFakeGitlab, type FakeGitlab } from "../../fake-gitlab/server.js";
import { testSigningKey } from "../../helpers/gitlab.js";
import { freePort, startProc, waitForListen, type Proc } from "../../services/procs.js";
import {
  dashboardExpressions,
  execTool,
  groupingLabels,
  loadDashboard,
  loadRules,
  matcherLabels,
  ruleExpressions,
  RUNBOOK_BASE,
  substituteGrafanaVariables,
  vectorSelectors,
  type NamedExpr,
} from "../../helpers/alerts/files.js";
import {
  DAEMON_MAIN,
  daemonBuilt,
  query,
  SCRAPE_INTERVAL,
  startAlerting,
  startWebhook,
  targetUp,
  waitFor,
  type Delivery,
  type Stack,
  type Webhook,
} from "../../helpers/alerts/live.js";
import { alertmanagerAlertsSchema, labelsResponseSchema, testTokenSchema } from "../../helpers/alerts/schema.js";

// The alerting path end to end with real programs: a ci-prober daemon probes
// the token registry (whose realm is the fake GitLab) with a runner's
// config.json, Debian's prometheus scrapes it with the project's rules (for:
// shortened), and prometheus-alertmanager delivers to a webhook in this test.

const services = inject("services");
const runner = "alert-r1";
const CANARY_PROJECT = "ci/canary";
const noCredentialRunner = "alert-nocred";
const user = `alert-live-${randomBytes(3).toString("hex")}`;
// A personal access token used as the registry password, as people do: GitLab can then tell its expiry.
const password = `glpat-${randomBytes(10).toString("hex")}`;
const auth = Buffer.from(`${user}:${password}`).toString("base64");
const registry = services.token.host;

let dir = "";
let dockerConfig = "";
let daemonAddress = "";
let daemon: Proc | undefined;
let canaryGitlab: FakeGitlab | undefined;
let closeCanaryCi: (() => void) | undefined;
let webhook: Webhook | undefined;
let stack: Stack | undefined;

function signal(ms = 10_000): AbortSignal {
  return AbortSignal.timeout(ms);
}

async function gitlabPost(path: string, body: unknown): Promise<unknown> {
  const res = await fetch(`${services.gitlab.url}${path}`, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "content-type": "application/json" },
    signal: signal(),
  });
  if (!res.ok) throw new Error(`POST ${path}: ${res.status}`);
  return res.json();
}

function prometheus(): string {
  if (!stack) throw new Error("the alerting stack did not start");
  return stack.prometheusUrl;
}

function writeDockerConfig(path: string, host: string, credential: string): void {
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, JSON.stringify({ auths: { [host]: { auth: credential } } }));
}

beforeAll(async () => {
  if (!daemonBuilt()) throw new Error(`${DAEMON_MAIN} is missing: run npm run build first (scripts/test.sh does)`);
  dir = mkdtempSync(join(tmpdir(), "ci-prober-alerts-"));
  const expiresAt = new Date(Date.now() + 10 * 86_400_000).toISOString().slice(0, 10);
  await gitlabPost("/-/test/users", { username: user, password, isAccessToken: true, actions: ["pull"], expiresAt });
  const { token } = testTokenSchema.parse(await gitlabPost("/-/test/tokens", { username: "root" }));
  writeFileSync(join(dir, "gitlab-token"), token);

  dockerConfig = join(dir, "home", "gitlab-runner", ".docker", "config.json");
  writeDockerConfig(dockerConfig, registry, auth);
  // The GitLab canary runs on a fake GitLab of this test's own, where the runner alert-r1 picks up its job.
  // (A local canary would need the shared test dockerd, whose other tests expect no canary container.)
  canaryGitlab = await startFakeGitlab(testSigningKey());
  const ci = ciState(canaryGitlab.state);
  closeCanaryCi = () => ci.close();
  ci.addProject({ path: CANARY_PROJECT, jobs: [{ name: "canary", tags: ["alert-live"] }] });
  ci.addRunner({ description: runner, tags: ["alert-live"], behaviour: { kind: "succeed", pickupMs: 50, runMs: 100 } });
  canaryGitlab.state.addUser({ username: "project_1_bot_canary", bot: true });
  writeFileSync(join(dir, "canary-token"), canaryGitlab.state.issueApiToken("project_1_bot_canary"));

  // A runner with no credential for its registry: failures from the start, and alerts without a credential to join.
  const emptyConfig = join(dir, "home", "nocred-runner", ".docker", "config.json");
  mkdirSync(join(emptyConfig, ".."), { recursive: true });
  writeFileSync(emptyConfig, "{}");

  const port = await freePort();
  daemonAddress = `127.0.0.1:${port}`;
  const config = join(dir, "ci-prober.yml");
  writeFileSync(
    config,
    JSON.stringify({
      interval: "1s",
      timeout: "10s",
      listen_address: daemonAddress,
      runners: [
        { name: runner, docker_config: dockerConfig, mode: "direct", images: [services.token.image] },
        { name: noCredentialRunner, docker_config: emptyConfig, mode: "direct", images: [services.htpasswd.image] },
      ],
      canary: {
        gitlab: { url: canaryGitlab.url, project: CANARY_PROJECT, token_file: join(dir, "canary-token"), interval: "2s", timeout: "20s" },
      },
      gitlab: { url: services.gitlab.url, token_file: join(dir, "gitlab-token"), interval: "1s" },
    }),
  );
  daemon = startProc("ci-prober", process.execPath, [DAEMON_MAIN, "run", "--config", config], join(dir, "ci-prober.log"));
  await waitForListen({ port }, 20_000, daemon);
  webhook = await startWebhook();
  stack = await startAlerting(dir, daemonAddress, webhook.url);
  await waitFor("prometheus to scrape ci-prober", 30_000, async () => ((await targetUp(prometheus(), signal())) ? true : undefined));
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await daemon?.stop();
  await webhook?.close();
  closeCanaryCi?.();
  await canaryGitlab?.close();
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

function findAlert(status: "firing" | "resolved", alertname: string, labels: Record<string, string>): Delivery | undefined {
  return webhook?.deliveries.find((d) =>
    d.payload.alerts.some(
      (a) => a.status === status && a.labels.alertname === alertname && Object.entries(labels).every(([k, v]) => a.labels[k] === v),
    ),
  );
}

function alertOf(d: Delivery, alertname: string, status: "firing" | "resolved") {
  const alert = d.payload.alerts.find((a) => a.labels.alertname === alertname && a.status === status && a.labels.runner === runner);
  if (!alert) throw new Error(`no ${status} ${alertname} in the delivery`);
  return alert;
}

describe("alerts against live prometheus and alertmanager", () => {
  test("blocking the credential's user delivers CIRegistryLoginFailing naming the runner, the user and the config.json file; re-activating resolves it", async () => {
    await waitFor("a successful login to be scraped", 30_000, async () => {
      const ok = await query(prometheus(), `ci_prober_login_success{runner="${runner}", registry="${registry}"} == 1`, signal());
      return ok.length === 1 ? ok : undefined;
    });
    const [info] = await query(
      prometheus(),
      `ci_prober_credential_info{runner="${runner}", registry="${registry}", in_use="true"}`,
      signal(),
    );
    expect(info?.metric.kind).toBe("personal");

    const blockedAt = Date.now();
    await gitlabPost(`/-/test/users/${user}/state`, { state: "blocked" });
    const firing = await waitFor("CIRegistryLoginFailing to be delivered", 60_000, () =>
      findAlert("firing", "CIRegistryLoginFailing", { runner }),
    );
    const deliveredMs = firing.at - blockedAt;
    console.log(
      `block → CIRegistryLoginFailing delivered to the pager webhook: ${deliveredMs} ms (daemon interval 1s, scrape/eval ${SCRAPE_INTERVAL}, for: 2s, group_wait 1s)`,
    );

    expect(firing.path).toBe("/pager");
    expect(firing.payload.receiver).toBe("pager");
    const alert = alertOf(firing, "CIRegistryLoginFailing", "firing");
    const source = `${dockerConfig}#auths["${registry}"]`;
    expect(alert.labels).toEqual({
      alertname: "CIRegistryLoginFailing",
      severity: "page",
      job: "ci-prober",
      instance: daemonAddress,
      runner,
      registry,
      username: user,
      kind: "personal",
      source,
    });
    expect(alert.annotations.summary).toBe(`Runner ${runner} cannot log in to ${registry} as ${user} (reason: unauthorized)`);
    expect(alert.annotations.description).toContain(
      `The credential is user ${user} (kind personal), stored in file ${dockerConfig} under key auths["${registry}"].`,
    );
    expect(alert.annotations.runbook_url).toBe(`${RUNBOOK_BASE}#ciregistryloginfailing`);

    // The credential check sees the same block in GitLab's Users API.
    const owner = await waitFor("CIRegistryCredentialOwnerInactive to be delivered", 30_000, () =>
      findAlert("firing", "CIRegistryCredentialOwnerInactive", { runner }),
    );
    expect(alertOf(owner, "CIRegistryCredentialOwnerInactive", "firing").annotations.summary).toBe(
      `Runner ${runner} logs in to ${registry} as ${user}, whose GitLab account is blocked`,
    );

    const fixedAt = Date.now();
    await gitlabPost(`/-/test/users/${user}/state`, { state: "active" });
    const resolved = await waitFor("CIRegistryLoginFailing to resolve", 60_000, () =>
      findAlert("resolved", "CIRegistryLoginFailing", { runner }),
    );
    console.log(`re-activation → CIRegistryLoginFailing resolved at the webhook: ${resolved.at - fixedAt} ms`);
    expect(alertOf(resolved, "CIRegistryLoginFailing", "resolved").labels.source).toBe(source);

    for (const body of webhook?.bodies ?? []) {
      expect(body).not.toContain(password);
      expect(body).not.toContain(auth);
    }
  }, 180_000);

  test("a personal access token that expires in 10 days opens tickets for its expiry and for being personal", async () => {
    const source = `${dockerConfig}#auths["${registry}"]`;
    const summaries: Record<string, string> = {};
    for (const alertname of ["CIRegistryCredentialExpiringSoon", "CIRunnerUsesPersonalCredential"]) {
      const delivery = await waitFor(`${alertname} to be delivered`, 60_000, () => findAlert("firing", alertname, { runner }));
      expect(delivery.payload.receiver, alertname).toBe("ticket");
      const alert = alertOf(delivery, alertname, "firing");
      expect(alert.labels, alertname).toMatchObject({ severity: "ticket", runner, registry, username: user, kind: "personal", source });
      expect(alert.annotations.description, alertname).toContain(`file ${dockerConfig} under key auths["${registry}"]`);
      summaries[alertname] = alert.annotations.summary ?? "";
    }
    // GitLab's expires_at is a date: the token ends at a midnight 9 to 10 days away.
    expect(summaries.CIRegistryCredentialExpiringSoon).toMatch(
      /^The credential runner alert-r1 uses for 127\.0\.0\.1:\d+ \(alert-live-[0-9a-f]{6}\) expires in (9|10)d /,
    );
    expect(summaries.CIRunnerUsesPersonalCredential).toBe(`Runner ${runner} logs in to ${registry} with ${user}'s personal account`);
  }, 90_000);

  test("a runner that holds no credential for its registry still pages CIRegistryLoginFailing, and the page says so", async () => {
    const host = services.htpasswd.host;
    const delivery = await waitFor("CIRegistryLoginFailing of the runner without a credential", 60_000, () =>
      findAlert("firing", "CIRegistryLoginFailing", { runner: noCredentialRunner }),
    );
    const alert = delivery.payload.alerts.find(
      (a) => a.labels.runner === noCredentialRunner && a.labels.alertname === "CIRegistryLoginFailing",
    );
    expect(alert?.labels).toEqual({
      alertname: "CIRegistryLoginFailing",
      severity: "page",
      job: "ci-prober",
      instance: daemonAddress,
      runner: noCredentialRunner,
      registry: host,
    });
    expect(alert?.annotations.summary).toBe(`Runner ${noCredentialRunner} cannot log in to ${host} (reason: credential_missing)`);
    expect(alert?.annotations.description).toContain(`The runner holds no credential for ${host}.`);
  }, 90_000);

  test("alertmanager inhibits a runner's pull alerts for the failing registry and its canary alerts while its login alert fires", async () => {
    const instance = "inhibition-test:9839";
    const alert = (labels: Record<string, string>) => ({
      labels: { severity: "page", instance, job: "ci-prober", ...labels },
      startsAt: new Date().toISOString(),
    });
    const res = await fetch(`${stack?.alertmanagerUrl}/api/v2/alerts`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      signal: signal(),
      body: JSON.stringify([
        alert({ alertname: "CIRegistryLoginFailing", runner: "inh-r1", registry: "a.example.jp" }),
        alert({ alertname: "CIImagePullFailing", runner: "inh-r1", registry: "a.example.jp", image: "a.example.jp/ci/x:1" }),
        alert({ alertname: "CIImagePullFailing", runner: "inh-r1", registry: "b.example.jp", image: "b.example.jp/ci/y:1" }),
        alert({ alertname: "CICanaryFailing", runner: "inh-r1", canary: "local" }),
        alert({ alertname: "CICanaryFailing", runner: "inh-r2", canary: "local" }),
      ]),
    });
    expect(res.status).toBe(200);
    const delivered = () =>
      (webhook?.deliveries ?? [])
        .flatMap((d) => d.payload.alerts)
        .filter((a) => a.labels.instance === instance)
        .map((a) => `${a.labels.alertname} ${a.labels.runner} ${a.labels.registry ?? a.labels.canary}`);
    await waitFor("the three uninhibited alerts", 30_000, () => (delivered().length >= 3 ? true : undefined));
    // Alertmanager marks the other two as suppressed by the login alert; ask it rather than wait for silence.
    const suppressed = await waitFor("two suppressed alerts", 10_000, async () => {
      const r = await fetch(`${stack?.alertmanagerUrl}/api/v2/alerts?filter=${encodeURIComponent(`instance="${instance}"`)}`, {
        signal: signal(),
      });
      const list = alertmanagerAlertsSchema.parse(await r.json());
      const muted = list
        .filter((a) => a.status.state === "suppressed" && a.status.inhibitedBy.length > 0)
        .map((a) => `${a.labels.alertname} ${a.labels.runner} ${a.labels.registry ?? a.labels.canary}`);
      return muted.length === 2 ? muted.sort() : undefined;
    });
    expect(suppressed).toEqual(["CICanaryFailing inh-r1 local", "CIImagePullFailing inh-r1 a.example.jp"]);
    expect(new Set(delivered())).toEqual(
      new Set(["CIRegistryLoginFailing inh-r1 a.example.jp", "CIImagePullFailing inh-r1 b.example.jp", "CICanaryFailing inh-r2 local"]),
    );
  }, 60_000);

  test("promtool check metrics finds nothing to complain about in the daemon's /metrics", async () => {
    const text = await (await fetch(`http://${daemonAddress}/metrics`, { signal: signal() })).text();
    expect(text).not.toContain(password);
    expect(text).not.toContain(auth);
    const r = await execTool("promtool", ["check", "metrics"], signal(), text);
    expect(`${r.stdout}${r.stderr}`).toBe("");
    expect(r.code).toBe(0);
  });

  test("every PromQL expression of the rules and the dashboard runs on the live prober and every metric and label it names exists", async () => {
    // Series that appear only after some rounds: a failure (of the runner without a credential), a canary.
    for (const needed of ["ci_prober_probe_failures_total", "ci_prober_canary_success", "ci_prober_credential_expiry_timestamp_seconds"]) {
      await waitFor(`series of ${needed}`, 30_000, async () =>
        (await query(prometheus(), needed, signal())).length > 0 ? true : undefined,
      );
    }
    const metricsText = await (await fetch(`http://${daemonAddress}/metrics`, { signal: signal() })).text();
    const labelNames = new Set(
      labelsResponseSchema.parse(await (await fetch(`${prometheus()}/api/v1/labels`, { signal: signal() })).json()).data,
    );
    const exprs: (NamedExpr & { needsData: boolean })[] = [
      ...ruleExpressions(loadRules()).map((e) => ({ ...e, needsData: e.where.startsWith("record") })),
      ...dashboardExpressions(loadDashboard()).map((e) => ({
        where: e.where,
        expr: substituteGrafanaVariables(e.expr, SCRAPE_INTERVAL),
        needsData: true,
      })),
    ];
    // Declared, but without series here: certificates are only checked for registries spoken to over TLS (a test
    // registry is on 127.0.0.1), the test registries send no ratelimit-* headers, and no runner here stores a
    // credential for the fake GitLab's own registry nor crawls a DOCKER_AUTH_CONFIG held in GitLab
    // (test/integration/daemon/gitlab-held.test.ts has both).
    const absentHere = new Set([
      "ci_prober_tls_cert_expiry_timestamp_seconds",
      "ci_prober_credential_shadows_job_token",
      "ci_prober_registry_rate_limit_remaining",
      "ci_prober_registry_rate_limit_limit",
    ]);
    const gitlabHeldOnly = (where: string) => where.startsWith('panel "DOCKER_AUTH_CONFIG held in GitLab"');
    const problems: string[] = [];
    for (const { where, expr, needsData } of exprs) {
      const selectors = vectorSelectors(expr);
      let result;
      try {
        result = await query(prometheus(), expr, signal());
      } catch (err) {
        problems.push(`${where}: ${err instanceof Error ? err.message : String(err)}`);
        continue;
      }
      const usesAbsent = selectors.some((s) => absentHere.has(s.metric));
      if (needsData && !usesAbsent && !gitlabHeldOnly(where) && result.length === 0) problems.push(`${where}: no data for ${expr}`);
      for (const label of groupingLabels(expr)) if (!labelNames.has(label)) problems.push(`${where}: no series has label ${label}`);
      for (const { metric, matchers } of selectors) {
        if (absentHere.has(metric)) {
          if (!metricsText.includes(`# TYPE ${metric} `)) problems.push(`${where}: ${metric} is not a metric of the daemon`);
          continue;
        }
        for (const label of ["", ...matcherLabels(matchers)]) {
          const found = await query(prometheus(), label === "" ? `count(${metric})` : `count(${metric}{${label}!=""})`, signal());
          if (found.length === 0) problems.push(`${where}: no series ${metric}${label === "" ? "" : ` with label ${label}`}`);
        }
      }
    }
    expect(problems).toEqual([]);
    expect(exprs.length).toBeGreaterThan(25);
  }, 120_000);

  // Last: it stops the daemon the tests above scrape.
  test("stopping the daemon pages CIProberDown for its instance", async () => {
    await daemon?.stop();
    const delivery = await waitFor("CIProberDown to be delivered", 60_000, () =>
      findAlert("firing", "CIProberDown", { instance: daemonAddress }),
    );
    expect(delivery.payload.receiver).toBe("pager");
    const alert = delivery.payload.alerts.find((a) => a.labels.alertname === "CIProberDown");
    expect(alert?.labels).toEqual({ alertname: "CIProberDown", severity: "page", job: "ci-prober", instance: daemonAddress });
    expect(alert?.annotations.summary).toBe(`ci-prober on ${daemonAddress} is down`);
  }, 90_000);
});
