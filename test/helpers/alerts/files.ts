import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";
import { dashboardSchema, rulesFileSchema, ruleTestsFileSchema, type Dashboard, type Panel, type Rule, type RulesFile } from "./schema.js";

/** The repository root. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const RULES_FILE = join(ROOT, "prometheus/alerts.yml");
export const RULE_TESTS_FILE = join(ROOT, "prometheus/alerts.test.yml");
export const PROMETHEUS_CONFIG = join(ROOT, "prometheus/prometheus.yml");
export const ALERTMANAGER_CONFIG = join(ROOT, "prometheus/alertmanager.yml");
export const DASHBOARD_FILE = join(ROOT, "grafana/ci-prober.json");
export const RUNBOOKS_FILE = join(ROOT, "docs/runbooks.md");

/** Where runbook_url points; prometheus/README.md says how to change it. */
export const RUNBOOK_BASE = "https://github.com/ci-prober/ci-prober/blob/main/docs/runbooks.md";

/** The alert names issue 6 fixes, with their severity. */
export const ALERT_SEVERITIES: Record<string, "page" | "ticket"> = {
  CIRegistryLoginFailing: "page",
  CIImagePullFailing: "page",
  CICanaryFailing: "page",
  CIProberDown: "page",
  CIProberStale: "page",
  CIRegistryCredentialOwnerInactive: "page",
  CIRunnerUsesPersonalCredential: "ticket",
  CIRegistryCredentialExpiringSoon: "ticket",
  CIRegistryCertificateExpiringSoon: "ticket",
  CIRegistryRateLimitLow: "ticket",
  CIRunnerCredentialShadowsJobToken: "ticket",
};

export function loadRules(path = RULES_FILE): RulesFile {
  return rulesFileSchema.parse(parseYaml(readFileSync(path, "utf8")));
}

export function loadRuleTests(): ReturnType<typeof ruleTestsFileSchema.parse> {
  return ruleTestsFileSchema.parse(parseYaml(readFileSync(RULE_TESTS_FILE, "utf8")));
}

export function loadDashboard(): Dashboard {
  return dashboardSchema.parse(JSON.parse(readFileSync(DASHBOARD_FILE, "utf8")));
}

export function allRules(file: RulesFile): Rule[] {
  return file.groups.flatMap((g) => g.rules);
}

/** Every panel, rows' collapsed panels included. */
export function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

export interface NamedExpr {
  /** Where it comes from, for failure messages: `panel "Login latency" B`, `alert CIProberDown`. */
  where: string;
  expr: string;
}

export function ruleExpressions(file: RulesFile): NamedExpr[] {
  return allRules(file).map((r) => ({ where: "alert" in r ? `alert ${r.alert}` : `record ${r.record}`, expr: r.expr }));
}

/** Panel target expressions and the selectors of label_values() variables, with Grafana variables still in them. */
export function dashboardExpressions(d: Dashboard): NamedExpr[] {
  const panels = allPanels(d.panels).flatMap((p) =>
    (p.targets ?? []).map((t) => ({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr ?? "" })),
  );
  const variables = d.templating.list.flatMap((v) => {
    if (v.type !== "query" || v.query === undefined) return [];
    const query = typeof v.query === "string" ? v.query : v.query.query;
    const m = /^label_values\((.+),\s*(\w+)\)$/.exec(query);
    return m?.[1] ? [{ where: `variable ${v.name}`, expr: m[1] }] : [{ where: `variable ${v.name}`, expr: query }];
  });
  return [...panels, ...variables];
}

/**
 * Grafana's variables replaced by what "All" and a default range give, so
 * Prometheus can run the expression: every runner, registry and instance.
 */
export function substituteGrafanaVariables(expr: string, scrapeInterval: string): string {
  return expr
    .replaceAll("$__rate_interval", `${4 * parseInt(scrapeInterval, 10)}s`)
    .replaceAll("$__range", "5m")
    .replaceAll("${registry:regex}", ".*")
    .replace(/\$\{?(instance|runner|registry)\}?/g, ".*");
}

/** The metric selectors of an expression: `name{matchers}` for our metrics, recording rules and `up`. */
export function vectorSelectors(expr: string): { metric: string; matchers: string }[] {
  const found = expr.matchAll(/(?<![\w:])(ci_prober_[a-z_]+|runner_registry:[a-z_:]+|up)(?![\w:(])\s*(\{[^}]*\})?/g);
  return [...found].map((m) => ({ metric: m[1] ?? "", matchers: m[2] ?? "" }));
}

/** Label names an expression groups, matches or copies by: `by (…)`, `on (…)`, `group_left (…)`, label_replace's source label. */
export function groupingLabels(expr: string): string[] {
  const lists = [...expr.matchAll(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g)].flatMap((m) =>
    (m[1] ?? "").split(","),
  );
  const replaceSources = [...expr.matchAll(/label_replace\([\s\S]*?,\s*"[^"]*",\s*"[^"]*",\s*"([^"]*)"/g)].map((m) => m[1] ?? "");
  return [...new Set([...lists, ...replaceSources].map((l) => l.trim()).filter((l) => l !== ""))];
}

/** Label names used in a selector's matchers. */
export function matcherLabels(matchers: string): string[] {
  return [...matchers.matchAll(/(\w+)\s*(?:=~|!~|!=|=)/g)].map((m) => m[1] ?? "");
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a command to its end and return its exit code and output (unlike procs.run, a non-zero exit is a result, not an error). */
export function execTool(cmd: string, args: string[], signal: AbortSignal, input = ""): Promise<ExecResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, signal, stdio: ["pipe", "pipe", "pipe"] });
    child.stdin.end(input);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolvePromise({ code, stdout, stderr }));
  });
}
