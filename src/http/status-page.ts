import { rowNote } from "../credentials/format.js";
import type { StatusStore } from "./status.js";

/** The / page: the same facts as /status, for a person at two in the morning. */
export function renderStatusPage(status: StatusStore): string {
  const results = status.latest().sort((a, b) => Number(a.success) - Number(b.success) || a.runner.localeCompare(b.runner));
  const failing = results.filter((r) => !r.success).length;
  const rows = results
    .map(
      (r) => `<tr class="${r.success ? "ok" : "bad"}"><td>${esc(r.runner)}</td><td>${r.probe}</td><td>${esc(r.target)}</td>` +
        `<td>${r.success ? "ok" : esc(r.reason ?? "failed")}</td><td>${r.durationSeconds.toFixed(3)}s</td>` +
        `<td>${esc(r.error ?? "")}${r.credential ? `<div>credential <b>${esc(r.credential.username || "-")}</b> (${esc(r.credential.kind)}) from <code>${esc(r.credential.source)}</code></div>` : ""}` +
        `<details><summary>log</summary><pre>${esc(r.log.join("\n"))}</pre></details></td></tr>`,
    )
    .join("\n");
  const creds = status.runners
    .flatMap((runner) => runner.credentials)
    .map(
      (c) => `<tr class="${c.error ? "bad" : c.in_use ? "" : "shadowed"}"><td>${esc(c.runner)}</td><td>${esc(c.registry)}</td><td>${esc(c.username)}</td>` +
        `<td>${esc(c.kind)}</td><td>${esc(c.secret_type)}</td><td>${c.in_use ? "in use" : "no"}</td><td><code>${esc(c.source)}</code>${esc(rowNote(c))}</td>` +
        `<td>${esc(c.error ?? "")}</td></tr>`,
    )
    .join("\n");
  const latent = status.runners
    .filter((r) => r.latent_failures !== null)
    .map((r) => `<li>runner <b>${esc(r.name)}</b>: ${esc(r.latent_failures ?? "")}</li>`)
    .join("");
  const errors = status.inputErrors.map((e) => `<li>${esc(e)}</li>`).join("");
  const held = status.gitlabVariables
    .map(
      (v) => `<tr class="${v.unreadable ? "bad" : v.hidden_by ? "shadowed" : ""}"><td>${esc(v.runner)}</td><td><code>${esc(v.source)}</code></td>` +
        `<td>${esc(v.environment_scope)}</td><td>${v.effective_projects}${v.projects.length > 0 ? `: ${esc(v.projects.join(", "))}${v.effective_projects > v.projects.length ? ", …" : ""}` : ""}</td>` +
        `<td>${esc(v.hidden_by ?? v.unreadable ?? "")}</td></tr>`,
    )
    .join("\n");
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>ci-prober</title>
<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
tr.bad td{background:#fdd}tr.shadowed td{color:#777}tr.ok td:nth-child(4){color:#070}pre{margin:0;font-size:.85em}code{font-size:.9em}</style></head>
<body><h1>ci-prober</h1>
<p>Config: <code>${esc(status.configFile)}</code> · ${results.length} probes, <b>${failing} failing</b> · <a href="/status">/status</a> · <a href="/metrics">/metrics</a></p>
${errors ? `<h2>Input errors</h2><ul>${errors}</ul>` : ""}
<h2>Probes</h2><table><tr><th>runner</th><th>probe</th><th>target</th><th>result</th><th>duration</th><th>error / log</th></tr>
${rows}</table>
<h2>Credentials</h2><table><tr><th>runner</th><th>registry</th><th>user</th><th>kind</th><th>secret</th><th>in use</th><th>source</th><th>error</th></tr>
${creds}</table>
${held ? `<h2>DOCKER_AUTH_CONFIG held in GitLab</h2><table><tr><th>holder</th><th>variable</th><th>environment scope</th><th>projects whose jobs get it</th><th>hidden by / unreadable</th></tr>\n${held}</table>` : ""}
${latent ? `<h2>Latent failures</h2><ul>${latent}</ul>` : ""}</body></html>
`;
}

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
