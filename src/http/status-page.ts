import { rowNote, type CredentialRow } from "../credentials/format.js";
import type { HeldVariableView } from "../gitlab/held.js";
import { REASONS, type Reason } from "../reasons.js";
import { REASON_WORDS, runbookUrl, type RunbookTopic } from "./runbooks.js";
import type { CredentialCheckView, RunnerView, StatusStore } from "./status.js";

// The / page: the facts of /status (it renders the very document /status serves), ordered for a
// person paged at two in the morning: what is failing and since when, why in words, which file
// holds the credential, what to read next. Server-rendered, no script, no external asset.

export const REFRESH_SECONDS = 30;
/** Credential expiry shown as a risk this close to it, as CIRegistryCredentialExpiringSoon fires. */
const EXPIRY_WARNING_DAYS = 14;

interface HistoryEntry {
  success: boolean;
  reason: string | null;
  at: string;
  duration_seconds: number;
}

interface LastResult {
  probe: string;
  runner: string;
  target: string;
  success: boolean;
  reason: string | null;
  error: string | null;
  started_at: string;
  duration_seconds: number;
  backoff?: { next_attempt_at: string; failures: number };
  shared_with?: string;
  pull?: string;
  credential?: { registry: string; username: string; kind: string; secret_type: string; source: string };
  log: string[];
}

interface ProbeEntry {
  key: string;
  failing_since: string | null;
  last_success: string | null;
  last: LastResult | null;
  history: HistoryEntry[];
}

/** The fields of the /status document the page reads; whatever else it carries is there for /status readers. */
export interface StatusDoc {
  config_file: string;
  started_at: string;
  input_errors: string[];
  runners: RunnerView[];
  probes: ProbeEntry[];
  credential_checks: CredentialCheckView[];
  gitlab_variables: HeldVariableView[];
}

export function renderStatusPage(status: StatusStore, now = Date.now()): string {
  return renderDoc(status.toJSON() as StatusDoc, now);
}

export function renderDoc(doc: StatusDoc, now: number): string {
  const probes = doc.probes.filter((p): p is ProbeEntry & { last: LastResult } => p.last !== null);
  const failing = probes.filter((p) => !p.last.success).sort(byFailingSince);
  const risks = credentialRisks(doc, now);
  const title = failing.length > 0 ? `✗ ${failing.length} failing · ci-prober` : "✓ all passing · ci-prober";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="${REFRESH_SECONDS}"><title>${esc(title)}</title>
<style>${CSS}</style></head>
<body>
${header(doc, probes.length, failing.length, now)}
<main>
${doc.input_errors.length > 0 ? `<section id="input-errors"><h2>Input errors</h2><ul class="plain">${doc.input_errors.map((e) => `<li class="bad-text">${esc(e)}</li>`).join("")}</ul></section>` : ""}
${failingSection(failing, doc, now)}
${risksSection(risks)}
${runnersSection(doc, probes, now)}
${heldSection(doc.gitlab_variables)}
</main>
</body></html>
`;
}

function header(doc: StatusDoc, total: number, failing: number, now: number): string {
  const state = failing > 0 ? "bad" : "ok";
  const headline = failing > 0 ? `${failing} of ${total} probes failing` : `All ${total} probes passing`;
  return `<header class="top ${state}"><div class="brand">ci-prober</div><div class="headline">${headline}</div>
<div class="meta">${doc.runners.length} runner${doc.runners.length === 1 ? "" : "s"} · as of ${time(new Date(now).toISOString())} · refreshes every ${REFRESH_SECONDS} s ·
config <code>${esc(doc.config_file)}</code> · <a href="/status">/status</a> · <a href="/metrics">/metrics</a></div></header>`;
}

function failingSection(failing: (ProbeEntry & { last: LastResult })[], doc: StatusDoc, now: number): string {
  if (failing.length === 0) return `<section id="failing"><h2>Failing now</h2><p class="quiet">Nothing is failing.</p></section>`;
  return `<section id="failing"><h2>Failing now (${failing.length})</h2>\n${failing.map((p) => failingCard(p, doc, now)).join("\n")}</section>`;
}

function failingCard(p: ProbeEntry & { last: LastResult }, doc: StatusDoc, now: number): string {
  const r = p.last;
  const reason = isReason(r.reason) ? r.reason : "unknown";
  const topic: RunbookTopic = r.probe === "login" || r.probe === "pull" || r.probe === "canary" ? r.probe : "certificate";
  return `<article class="card bad">
<div class="card-head"><span class="badge bad">${esc(reason)}</span> <b>${esc(r.probe)}</b> <span class="runner">${esc(r.runner)}</span> → <code>${esc(r.target)}</code></div>
<p class="since">${sinceText(p, doc.started_at, now)}</p>
<p class="words">${esc(REASON_WORDS[reason])} <a class="runbook" href="${runbookUrl(topic)}">runbook</a></p>
${r.error ? `<p class="error"><code>${esc(r.error)}</code></p>` : ""}
${r.credential ? `<p class="cred">${credentialText(r.credential, credentialRow(doc, r.runner, r.credential))}</p>` : ""}
${r.backoff ? `<p class="backoff">Backing off after ${r.backoff.failures} refusal${r.backoff.failures === 1 ? "" : "s"}: next attempt ${time(r.backoff.next_attempt_at)}.</p>` : ""}
${r.shared_with ? `<p class="quiet">Result of runner ${esc(r.shared_with)}'s identical probe (same secret, registry and image).</p>` : ""}
<div class="recent">recent ${strip(p.history)} <span>oldest → newest · <i class="cell ok"></i> ok <i class="cell fail"></i> failed <i class="cell timeout"></i> timeout</span></div>
${r.log.length > 0 ? `<details><summary>step-by-step log</summary><pre>${esc(r.log.join("\n"))}</pre></details>` : ""}
</article>`;
}

/** "failing since <time> (<duration>), last success <time>": the two facts an incident starts from. */
function sinceText(p: ProbeEntry, startedAt: string, now: number): string {
  const since = p.failing_since ?? p.last?.started_at ?? startedAt;
  const last = p.last_success ? `last success ${time(p.last_success)}` : `no success since ci-prober started ${time(startedAt)}`;
  return `failing since <time datetime="${esc(since)}">${time(since)}</time> (${duration(now - Date.parse(since))}), ${last}`;
}

function credentialText(c: NonNullable<LastResult["credential"]>, row: CredentialRow | undefined): string {
  const use =
    row === undefined
      ? ""
      : row.in_use
        ? ` · <span class="ok-text">in use</span>`
        : ` · <span class="warn-text">shadowed${row.shadowed_by ? ` by <code>${esc(row.shadowed_by)}</code>` : ""}</span>`;
  return `credential <b>${esc(c.username || "-")}</b> (${esc(c.kind)}, ${esc(c.secret_type)}) from <code>${esc(c.source)}</code>${use}`;
}

function credentialRow(doc: StatusDoc, runner: string, c: { registry: string; source: string }): CredentialRow | undefined {
  const rows = doc.runners.find((r) => r.name === runner)?.credentials ?? [];
  return rows.find((row) => row.source === c.source && row.registry === c.registry) ?? rows.find((row) => row.source === c.source);
}

/** The recent results, oldest left, newest right. */
function strip(history: HistoryEntry[]): string {
  const cells = [...history].reverse().map((h) => {
    const cls = h.success ? "ok" : h.reason === "timeout" ? "timeout" : "fail";
    return `<span class="cell ${cls}" title="${esc(`${time(h.at)} ${h.success ? "ok" : (h.reason ?? "failed")} ${h.duration_seconds}s`)}"></span>`;
  });
  return `<span class="strip" aria-label="recent results">${cells.join("")}</span>`;
}

interface Risk {
  order: number;
  runner: string;
  registry: string;
  text: string;
  topic: RunbookTopic;
}

/** What can stop working without any probe failing yet: whose credential it is, its owner, its expiry, what it hides. */
function credentialRisks(doc: StatusDoc, now: number): Risk[] {
  const risks: Risk[] = [];
  for (const c of doc.credential_checks) {
    if (c.state !== "active" && c.state !== "unknown") {
      risks.push({
        order: 0,
        runner: c.runner,
        registry: c.registry,
        topic: "owner_inactive",
        text: `the owner of <b>${esc(c.username)}</b>'s credential is <b class="bad-text">${esc(c.state)}</b>`,
      });
    }
    const days = c.expires_at ? Math.floor((Date.parse(c.expires_at) - now) / 86_400_000) : undefined;
    if (days !== undefined && days < EXPIRY_WARNING_DAYS) {
      const when = days < 0 ? `expired ${-days} day${days === -1 ? "" : "s"} ago` : `expires in ${days} day${days === 1 ? "" : "s"}`;
      risks.push({
        order: 1,
        runner: c.runner,
        registry: c.registry,
        topic: "expiring",
        text: `<b>${esc(c.username)}</b>'s token ${when} (${time(c.expires_at ?? "")})`,
      });
    }
  }
  for (const runner of doc.runners) {
    for (const row of runner.credentials) risks.push(...rowRisks(row));
    if (runner.latent_failures)
      risks.push({ order: 4, runner: runner.name, registry: "", topic: "pull", text: esc(runner.latent_failures) });
  }
  return risks.sort((a, b) => a.order - b.order || a.runner.localeCompare(b.runner));
}

function rowRisks(row: CredentialRow): Risk[] {
  const risks: Risk[] = [];
  const at = `<code>${esc(row.source)}</code>`;
  if (row.kind === "personal" && row.in_use) {
    risks.push({
      order: 2,
      runner: row.runner,
      registry: row.registry,
      topic: "personal",
      text: `<b>${esc(row.username)}</b> is a <b class="warn-text">personal</b> credential (${at}): when that person leaves or is locked out, these jobs fail`,
    });
  }
  if (row.shadows_job_token) {
    risks.push({
      order: 3,
      runner: row.runner,
      registry: row.registry,
      topic: "shadows_job_token",
      text: `<b>${esc(row.username)}</b> (${at}) <b class="warn-text">shadows the job token</b>: jobs use it instead of their own`,
    });
  }
  return risks;
}

function risksSection(risks: Risk[]): string {
  if (risks.length === 0) return `<section id="risks"><h2>Credential risks</h2><p class="quiet">No credential at risk.</p></section>`;
  const items = risks.map(
    (r) =>
      `<li><span class="runner">${esc(r.runner)}</span>${r.registry ? ` → <code>${esc(r.registry)}</code>` : ""}: ${r.text}. <a class="runbook" href="${runbookUrl(r.topic)}">runbook</a></li>`,
  );
  return `<section id="risks"><h2>Credential risks (${risks.length})</h2><ul class="risks">${items.join("\n")}</ul></section>`;
}

function runnersSection(doc: StatusDoc, probes: (ProbeEntry & { last: LastResult })[], now: number): string {
  const byRunner = new Map<string, (ProbeEntry & { last: LastResult })[]>();
  for (const p of probes) byRunner.set(p.last.runner, [...(byRunner.get(p.last.runner) ?? []), p]);
  const known = new Set(doc.runners.map((r) => r.name));
  const runners = [...doc.runners].sort(
    (a, b) => failingOf(byRunner.get(b.name)) - failingOf(byRunner.get(a.name)) || a.name.localeCompare(b.name),
  );
  const groups = runners.map((r) => runnerGroup(r, byRunner.get(r.name) ?? [], doc, now));
  const others = probes.filter((p) => !known.has(p.last.runner));
  if (others.length > 0)
    groups.push(
      `<details class="group" open><summary><b>Not of one runner</b> · ${others.length} probes</summary>${probeTable(others, doc, now)}</details>`,
    );
  return `<section id="runners"><h2>Runners (${doc.runners.length})</h2>\n${groups.join("\n")}</section>`;
}

function runnerGroup(runner: RunnerView, probes: (ProbeEntry & { last: LastResult })[], doc: StatusDoc, now: number): string {
  const failing = failingOf(probes);
  const state = failing > 0 ? `<span class="badge bad">${failing} failing</span>` : `<span class="badge ok">ok</span>`;
  return `<details class="group"${failing > 0 ? " open" : ""}><summary>${state} <b class="runner">${esc(runner.name)}</b> · ${esc(runner.mode)} · <code>${esc(runner.source)}</code></summary>
${probes.length > 0 ? probeTable(probes, doc, now) : `<p class="quiet">No probe has run yet.</p>`}
${credentialTable(runner.credentials)}
</details>`;
}

function probeTable(probes: (ProbeEntry & { last: LastResult })[], doc: StatusDoc, now: number): string {
  const rows = [...probes]
    .sort((a, b) => Number(a.last.success) - Number(b.last.success) || a.key.localeCompare(b.key))
    .map((p) => {
      const r = p.last;
      const result = r.success ? `<span class="ok-text">ok</span>` : `<span class="bad-text">${esc(r.reason ?? "failed")}</span>`;
      const since = r.success ? `passing · last run ${time(r.started_at)}` : sinceText(p, doc.started_at, now);
      return `<tr><td>${result}</td><td>${esc(r.probe)}</td><td class="nowrap"><code>${esc(r.target)}</code></td><td>${since}</td><td>${strip(p.history)}</td><td class="num">${r.duration_seconds.toFixed(3)} s</td></tr>`;
    });
  return `<table class="probes"><thead><tr><th>result</th><th>probe</th><th>target</th><th>since</th><th>recent</th><th>took</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

function credentialTable(rows: CredentialRow[]): string {
  if (rows.length === 0) return `<p class="quiet">No credential found for this runner.</p>`;
  const body = rows.map((c) => {
    const use = c.error
      ? `<span class="bad-text">${esc(c.reason ?? "unreadable")}</span>`
      : c.in_use
        ? `<span class="ok-text">in use</span>`
        : `<span class="warn-text">shadowed</span>`;
    return (
      `<tr class="${c.in_use ? "" : "dim"}"><td class="nowrap"><code>${esc(c.registry)}</code></td><td class="nowrap">${esc(c.username || "-")}</td><td>${esc(c.kind)}</td><td>${esc(c.secret_type)}</td>` +
      `<td class="nowrap">${use}</td><td><code>${esc(c.source)}</code>${esc(rowNote(c))}${c.error ? `<div class="bad-text">${esc(c.error)}</div>` : ""}</td></tr>`
    );
  });
  return `<table class="creds"><thead><tr><th>registry</th><th>user</th><th>kind</th><th>secret</th><th>use</th><th>source</th></tr></thead><tbody>${body.join("")}</tbody></table>`;
}

function heldSection(held: HeldVariableView[]): string {
  if (held.length === 0) return "";
  const rows = held.map(
    (v) =>
      `<tr class="${v.hidden_by ? "dim" : ""}"><td>${esc(v.runner)}</td><td><code>${esc(v.source)}</code></td><td>${esc(v.environment_scope)}</td>` +
      `<td>${v.effective_projects}${v.projects.length > 0 ? `: ${esc(v.projects.join(", "))}${v.effective_projects > v.projects.length ? ", …" : ""}` : ""}</td>` +
      `<td>${esc(v.hidden_by ?? v.unreadable ?? "")}</td></tr>`,
  );
  return (
    `<section id="gitlab-variables"><h2>DOCKER_AUTH_CONFIG held in GitLab</h2><table><thead><tr><th>holder</th><th>variable</th><th>environment scope</th>` +
    `<th>projects whose jobs get it</th><th>hidden by / unreadable</th></tr></thead><tbody>${rows.join("")}</tbody></table></section>`
  );
}

function failingOf(probes: (ProbeEntry & { last: LastResult })[] | undefined): number {
  return (probes ?? []).filter((p) => !p.last.success).length;
}

function byFailingSince(a: ProbeEntry, b: ProbeEntry): number {
  return (a.failing_since ?? "").localeCompare(b.failing_since ?? "") || a.key.localeCompare(b.key);
}

function isReason(text: string | null): text is Reason {
  return text !== null && (REASONS as readonly string[]).includes(text);
}

/** 2026-12-01 02:14:07 UTC: the server has no idea of the reader's zone, and no script runs to find out. */
export function time(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "?" : `${d.toISOString().slice(0, 10)} ${d.toISOString().slice(11, 19)} UTC`;
}

/** 45s, 4m 12s, 3h 5m, 2d 4h. */
export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// Dark, calm, high contrast: read at night, on a laptop or a phone. Red only for what is failing.
const CSS = `
:root{--bg:#111418;--panel:#1a1f26;--line:#2c333d;--text:#e6e9ee;--muted:#98a2b3;--ok:#3fb950;--bad:#f85149;--warn:#d29922;--timeout:#db8b2e;--link:#79b8ff}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--text);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
a{color:var(--link)}code{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;color:#c9d1d9;word-break:break-all}
header.top{padding:14px 24px;border-bottom:4px solid var(--ok);background:var(--panel)}header.top.bad{border-bottom-color:var(--bad)}
.brand{font-weight:600;color:var(--muted);letter-spacing:.04em}.headline{font-size:26px;font-weight:700;margin:2px 0}
header.bad .headline{color:var(--bad)}header.ok .headline{color:var(--ok)}.meta{color:var(--muted);font-size:13px}
main{padding:8px 24px 40px;max-width:1400px}h2{font-size:18px;margin:24px 0 10px;color:var(--text)}
.card{background:var(--panel);border:1px solid var(--line);border-left:5px solid var(--bad);border-radius:6px;padding:12px 16px;margin:0 0 12px}
.card p{margin:6px 0}.card-head{font-size:17px}.since{font-size:16px;font-weight:600}.words{color:var(--text)}
.error code{color:#ffb1ab}.cred,.backoff{color:var(--text)}.backoff{color:var(--warn)}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:700;text-transform:uppercase;letter-spacing:.03em}
.badge.bad{background:var(--bad);color:#fff}.badge.ok{background:#23863633;color:var(--ok);border:1px solid var(--ok)}
.runner{font-weight:700}.runbook{font-weight:600;white-space:nowrap}.runbook::after{content:" ↗"}
.ok-text{color:var(--ok);font-weight:600}.bad-text{color:var(--bad);font-weight:600}.warn-text{color:var(--warn);font-weight:600}
.quiet{color:var(--muted)}.recent{color:var(--muted);font-size:13px;display:flex;align-items:center;gap:8px}
.strip{display:inline-flex;gap:3px;vertical-align:middle}.cell{width:14px;height:14px;border-radius:3px;display:inline-block}
.cell.ok{background:var(--ok)}.cell.fail{background:var(--bad)}.cell.timeout{background:var(--timeout);background-image:repeating-linear-gradient(45deg,transparent 0 3px,#0004 3px 5px)}
details>summary{cursor:pointer;color:var(--muted)}details pre{background:#0b0d10;border:1px solid var(--line);padding:8px;overflow:auto;font-size:12px;color:#c9d1d9}
ul.risks{list-style:none;padding:0;margin:0}ul.risks li{background:var(--panel);border:1px solid var(--line);border-left:5px solid var(--warn);border-radius:6px;padding:8px 14px;margin:0 0 8px}
ul.plain{padding-left:18px}.group{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:8px 14px;margin:0 0 10px}
.group>summary{color:var(--text);font-size:15px;padding:2px 0}.group[open]>summary{margin-bottom:8px}
table{border-collapse:collapse;width:100%;margin:6px 0 10px;font-size:14px}th{color:var(--muted);font-weight:600;text-align:left;border-bottom:1px solid var(--line);padding:4px 8px}
td{border-bottom:1px solid var(--line);padding:5px 8px;vertical-align:top}td.nowrap,td.nowrap code{white-space:nowrap;word-break:normal}
i.cell{width:10px;height:10px;vertical-align:-1px;margin-left:6px}tr.dim td{color:var(--muted)}td.num{text-align:right;white-space:nowrap}
`;
