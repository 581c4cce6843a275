import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import {
  ALERT_SEVERITIES,
  ALERTMANAGER_CONFIG,
  allRules,
  execTool,
  loadRules,
  loadRuleTests,
  PROMETHEUS_CONFIG,
  RULE_TESTS_FILE,
  RULES_FILE,
  RUNBOOK_BASE,
  RUNBOOKS_FILE,
} from "../../helpers/alerts/files.js";

// The rules, their unit tests and the example configs, checked by Debian's
// promtool and amtool (scripts/test.sh installs them).

function timeout(): AbortSignal {
  return AbortSignal.timeout(30_000);
}

describe("promtool and amtool", () => {
  test("promtool check rules accepts alerts.yml with its 11 alerts and no recording rule (in_use comes from ci-prober)", async () => {
    const r = await execTool("promtool", ["check", "rules", RULES_FILE], timeout());
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain("SUCCESS: 11 rules found");
    expect(r.code).toBe(0);
  });

  test("promtool test rules passes every unit test in alerts.test.yml", async () => {
    const r = await execTool("promtool", ["test", "rules", RULE_TESTS_FILE], timeout());
    expect(`${r.stdout}${r.stderr}`).toContain("SUCCESS");
    expect(r.code).toBe(0);
  });

  test("promtool check config accepts the example prometheus.yml and the rules it loads", async () => {
    const r = await execTool("promtool", ["check", "config", PROMETHEUS_CONFIG], timeout());
    expect(r.stdout).toContain("SUCCESS: 1 rule files found");
    expect(r.code).toBe(0);
  });

  test("amtool check-config accepts the example alertmanager.yml with 2 receivers and 2 inhibit rules", async () => {
    const r = await execTool("amtool", ["check-config", ALERTMANAGER_CONFIG], timeout());
    expect(r.stdout).toContain("SUCCESS");
    expect(r.stdout).toContain(" - 2 inhibit rules");
    expect(r.stdout).toContain(" - 2 receivers");
    expect(r.code).toBe(0);
  });

  test.each([
    ["page", "pager"],
    ["ticket", "ticket"],
  ])("amtool routes a severity=%s alert to the %s receiver", async (severity, receiver) => {
    const r = await execTool(
      "amtool",
      [
        "config",
        "routes",
        "test",
        `--config.file=${ALERTMANAGER_CONFIG}`,
        `severity=${severity}`,
        "alertname=CIRegistryLoginFailing",
        "runner=r1",
      ],
      timeout(),
    );
    expect(r.stdout.trim()).toBe(receiver);
    expect(r.code).toBe(0);
  });
});

describe("alerts.yml", () => {
  const rules = allRules(loadRules());
  const alerts = rules.flatMap((r) => ("alert" in r ? [r] : []));

  test("defines exactly the alert names of issue 6, each once, with its severity", () => {
    expect(Object.fromEntries(alerts.map((a) => [a.alert, a.labels?.severity]))).toEqual(ALERT_SEVERITIES);
    expect(alerts).toHaveLength(Object.keys(ALERT_SEVERITIES).length);
  });

  test("every alert waits with for: and has a summary, a description and a runbook_url to its own runbook section", () => {
    const runbooks = readFileSync(RUNBOOKS_FILE, "utf8");
    for (const a of alerts) {
      expect(a.for, a.alert).toMatch(/^\d+[mh]$/);
      expect(a.annotations?.summary, a.alert).toMatch(/\S/);
      expect(a.annotations?.description, a.alert).toMatch(/\S/);
      expect(a.annotations?.runbook_url, a.alert).toBe(`${RUNBOOK_BASE}#${a.alert.toLowerCase()}`);
      // GitHub and GitLab anchor a "## Name" heading as #name.
      expect(runbooks, a.alert).toContain(`\n## ${a.alert}\n`);
    }
  });

  test("every credential alert's annotations name the user and the file and key of the credential", () => {
    const credentialAlerts = [
      "CIRegistryLoginFailing",
      "CIImagePullFailing",
      "CIRegistryCredentialOwnerInactive",
      "CIRunnerUsesPersonalCredential",
      "CIRegistryCredentialExpiringSoon",
      "CIRunnerCredentialShadowsJobToken",
    ];
    for (const name of credentialAlerts) {
      const description = alerts.find((a) => a.alert === name)?.annotations?.description ?? "";
      expect(description, name).toContain("$labels.username");
      expect(description, name).toContain('reReplaceAll "#.*$" "" $labels.source');
      expect(description, name).toContain('reReplaceAll "^[^#]*#" "" $labels.source');
      expect(description, name).toContain("$labels.runner");
      expect(description, name).toContain("$labels.registry");
    }
  });

  test("every join on ci_prober_credential_info takes the one in use, and no rule guesses it", () => {
    for (const a of alerts) {
      for (const join of a.expr.matchAll(/group_left \([^)]*\)\s*ci_prober_credential_info(\{[^}]*\})?/g))
        expect(join[1], a.alert).toBe('{in_use="true"}');
    }
    expect(rules.filter((r) => "record" in r)).toEqual([]);
  });

  test("alerts.test.yml has, for every alert, a case where it fires and one where it does not", () => {
    const cases = loadRuleTests().tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const name of Object.keys(ALERT_SEVERITIES)) {
      const own = cases.filter((c) => c.alertname === name);
      expect(
        own.some((c) => c.exp_alerts.length > 0),
        `${name} fires`,
      ).toBe(true);
      expect(
        own.some((c) => c.exp_alerts.length === 0),
        `${name} does not fire`,
      ).toBe(true);
    }
  });
});
