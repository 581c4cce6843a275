import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { parse as parseYaml } from "yaml";
import { allPanels, dashboardExpressions, DASHBOARD_FILE, loadDashboard, ROOT, vectorSelectors } from "../../helpers/alerts/files.js";

// grafana/ci-prober.json is checked for what Grafana needs to import it and
// what keeps it portable between Grafana instances.

const dashboard = loadDashboard();
const panels = allPanels(dashboard.panels);
const DS = "${datasource}";

describe("grafana/ci-prober.json", () => {
  test("is dashboard JSON with a schemaVersion, a uid and panels", () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.uid).toBe("ci-prober");
    expect(panels.length).toBeGreaterThan(10);
  });

  test("panel ids are unique", () => {
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  test("has a Prometheus datasource variable and runner and registry variables that use it", () => {
    const vars = dashboard.templating.list;
    expect(vars.find((v) => v.name === "datasource")).toMatchObject({ type: "datasource", query: "prometheus" });
    for (const name of ["runner", "registry"]) {
      expect(
        vars.find((v) => v.name === name),
        name,
      ).toMatchObject({ type: "query", datasource: { type: "prometheus", uid: DS }, allValue: ".*" });
    }
  });

  test("every panel and every target uses the datasource variable", () => {
    for (const p of panels.filter((p) => p.type !== "row")) {
      expect(p.datasource, p.title).toEqual({ type: "prometheus", uid: DS });
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets ?? []) expect(t.datasource, `${p.title} ${t.refId}`).toEqual({ type: "prometheus", uid: DS });
    }
  });

  test("every target has a non-empty expr that selects ci-prober metrics", () => {
    for (const { where, expr } of dashboardExpressions(dashboard)) {
      expect(expr.trim(), where).not.toBe("");
      expect(vectorSelectors(expr).length, where).toBeGreaterThan(0);
    }
  });

  test("shows the runner × registry matrices, latency quantiles, failures by reason, credentials and certificate expiry", () => {
    const titles = panels.map((p) => p.title);
    expect(titles).toEqual(
      expect.arrayContaining([
        "Login: runner × registry",
        "Pull: runner × image",
        "Canary: runner × canary",
        "Login latency",
        "Pull latency",
        "Canary latency",
        "Failures by reason",
        "Credentials",
        "Certificate expiry",
      ]),
    );
    const exprs = dashboardExpressions(dashboard).map((e) => e.expr);
    for (const metric of ["login", "pull", "canary"]) {
      for (const q of ["0.5", "0.95"]) {
        expect(
          exprs.some(
            (e) =>
              e.startsWith(`histogram_quantile(${q}, sum by (le, runner, `) && e.includes(`ci_prober_${metric}_duration_seconds_bucket`),
          ),
          `${metric} p${q}`,
        ).toBe(true);
      }
    }
    const credentials = panels.find((p) => p.title === "Credentials");
    expect(credentials?.targets?.map((t) => t.expr)).toEqual([
      'max by (runner, registry, username, kind, source, in_use) (ci_prober_credential_info{instance=~"$instance", runner=~"$runner", registry=~"$registry"})',
      'max by (runner, registry, state) (ci_prober_credential_owner_state{instance=~"$instance", runner=~"$runner", registry=~"$registry"})',
      'max by (runner, registry) (ci_prober_credential_expiry_timestamp_seconds{instance=~"$instance", runner=~"$runner", registry=~"$registry"}) * 1000',
    ]);
  });

  test("a panel lists the DOCKER_AUTH_CONFIG GitLab holds by holder, with in use, login and owner state; a stat counts credentials hiding the job token", () => {
    const held = panels.find((p) => p.title === "DOCKER_AUTH_CONFIG held in GitLab");
    expect(held?.type).toBe("table");
    expect(held?.targets?.map((t) => t.expr)).toEqual([
      'max by (runner, registry, username, kind, source, in_use) (ci_prober_credential_info{instance=~"$instance", runner=~"gitlab:.+"})',
      'max by (runner, registry) (ci_prober_login_success{instance=~"$instance", runner=~"gitlab:.+"})',
      'max by (runner, registry, state) (ci_prober_credential_owner_state{instance=~"$instance", runner=~"gitlab:.+"})',
    ]);
    const shadows = panels.find((p) => p.title === "Credentials hiding the job token");
    expect(shadows?.targets?.map((t) => t.expr)).toEqual([
      'count(ci_prober_credential_shadows_job_token{instance=~"$instance", runner=~"$runner"}) or vector(0)',
    ]);
    const personal = panels.find((p) => p.title === "Personal credentials");
    expect(personal?.targets?.[0]?.expr).toContain('kind="personal", in_use="true"');
  });

  test("the provisioning files load the dashboard and a Prometheus datasource", () => {
    const providers = parseYaml(readFileSync(join(ROOT, "grafana/provisioning/dashboards.yml"), "utf8")) as unknown;
    expect(providers).toMatchObject({
      apiVersion: 1,
      providers: [{ name: "ci-prober", type: "file", options: { path: expect.any(String) } }],
    });
    const datasources = parseYaml(readFileSync(join(ROOT, "grafana/provisioning/datasources.yml"), "utf8")) as unknown;
    expect(datasources).toMatchObject({ apiVersion: 1, datasources: [{ type: "prometheus", access: "proxy" }] });
    expect(readFileSync(DASHBOARD_FILE, "utf8").endsWith("}\n")).toBe(true);
  });
});
