import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { freePort, startProc, waitForListen, type Proc } from "../../services/procs.js";
import { ALERTMANAGER_CONFIG, loadRules, ROOT } from "./files.js";
import {
  alertmanagerConfigSchema,
  queryResponseSchema,
  targetsResponseSchema,
  webhookPayloadSchema,
  type WebhookPayload,
} from "./schema.js";

// The live alerting stack of test/alerts/live.test.ts: a ci-prober daemon,
// Debian's prometheus scraping it with the project's rules, and
// prometheus-alertmanager delivering to a webhook server in the test.

export const DAEMON_MAIN = join(ROOT, "dist/src/main.js");
/** Scrape and rule evaluation interval of the test Prometheus. */
export const SCRAPE_INTERVAL = "1s";

export { waitFor } from "../daemon.js";

export interface Delivery {
  at: number;
  path: string;
  payload: WebhookPayload;
}

/** An HTTP server standing in for the pager and ticket systems: it records every Alertmanager webhook POST. */
export interface Webhook {
  url: string;
  deliveries: Delivery[];
  /** Raw request bodies, to check that no secret ever reaches a receiver. */
  bodies: string[];
  close(): Promise<void>;
}

export async function startWebhook(): Promise<Webhook> {
  const deliveries: Delivery[] = [];
  const bodies: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      bodies.push(body);
      const parsed = webhookPayloadSchema.safeParse(JSON.parse(body));
      if (parsed.success) deliveries.push({ at: Date.now(), path: req.url ?? "", payload: parsed.data });
      res.writeHead(parsed.success ? 200 : 400).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    deliveries,
    bodies,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * The project's rules with every `for:` shortened, so the test sees in seconds
 * what production sees in minutes. Pull and canary wait longer than login, as
 * they do in alerts.yml, so a login failure reaches Alertmanager first.
 */
export function writeTestRules(dir: string): string {
  const rules = loadRules();
  const shortFor: Record<string, string> = { CIRegistryLoginFailing: "2s", CIImagePullFailing: "6s", CICanaryFailing: "6s" };
  const groups = rules.groups.map((g) => ({
    ...g,
    rules: g.rules.map((r) => ("alert" in r && r.for !== undefined ? { ...r, for: shortFor[r.alert] ?? "2s" } : r)),
  }));
  const file = join(dir, "alerts.yml");
  writeFileSync(file, stringifyYaml({ groups }));
  return file;
}

/** The example Alertmanager config with its receivers pointed at the webhook and its waits shortened. */
export function writeTestAlertmanagerConfig(dir: string, webhookUrl: string): string {
  const config = alertmanagerConfigSchema.parse(parseYaml(readFileSync(ALERTMANAGER_CONFIG, "utf8")));
  Object.assign(config.route, { group_wait: "1s", group_interval: "1s", repeat_interval: "1h" });
  for (const r of config.receivers) r.webhook_configs = [{ ...r.webhook_configs[0], url: `${webhookUrl}/${r.name}` }];
  const file = join(dir, "alertmanager.yml");
  writeFileSync(file, stringifyYaml(config));
  return file;
}

export interface Stack {
  prometheusUrl: string;
  alertmanagerUrl: string;
  procs: Proc[];
  stop(): Promise<void>;
}

/** Start alertmanager and prometheus (scraping `target` as job ci-prober with the test rules). */
export async function startAlerting(dir: string, target: string, webhookUrl: string): Promise<Stack> {
  const procs: Proc[] = [];
  const stop = async () => {
    for (const p of procs.reverse()) await p.stop();
  };
  try {
    const amPort = await freePort();
    mkdirSync(join(dir, "alertmanager"), { recursive: true });
    const am = startProc(
      "alertmanager",
      "prometheus-alertmanager",
      [
        `--config.file=${writeTestAlertmanagerConfig(dir, webhookUrl)}`,
        `--storage.path=${join(dir, "alertmanager")}`,
        `--web.listen-address=127.0.0.1:${amPort}`,
        "--cluster.listen-address=",
      ],
      join(dir, "alertmanager.log"),
    );
    procs.push(am);
    await waitForListen({ port: amPort }, 15_000, am);

    const promPort = await freePort();
    const promConfig = join(dir, "prometheus.yml");
    writeFileSync(
      promConfig,
      stringifyYaml({
        global: { scrape_interval: SCRAPE_INTERVAL, evaluation_interval: SCRAPE_INTERVAL },
        rule_files: [writeTestRules(dir)],
        alerting: { alertmanagers: [{ static_configs: [{ targets: [`127.0.0.1:${amPort}`] }] }] },
        scrape_configs: [{ job_name: "ci-prober", static_configs: [{ targets: [target] }] }],
      }),
    );
    const prom = startProc(
      "prometheus",
      "prometheus",
      [`--config.file=${promConfig}`, `--storage.tsdb.path=${join(dir, "tsdb")}`, `--web.listen-address=127.0.0.1:${promPort}`],
      join(dir, "prometheus.log"),
    );
    procs.push(prom);
    await waitForListen({ port: promPort }, 30_000, prom);
    return { prometheusUrl: `http://127.0.0.1:${promPort}`, alertmanagerUrl: `http://127.0.0.1:${amPort}`, procs, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

export interface Sample {
  metric: Record<string, string>;
  value: number;
}

/** An instant query; rejects with Prometheus's error text when the expression does not run. */
export async function query(prometheusUrl: string, expr: string, signal: AbortSignal): Promise<Sample[]> {
  const res = await fetch(`${prometheusUrl}/api/v1/query?${new URLSearchParams({ query: expr })}`, { signal });
  const body: unknown = await res.json();
  if (!res.ok) throw new Error(`query failed (${res.status}): ${JSON.stringify(body)}: ${expr}`);
  const { data } = queryResponseSchema.parse(body);
  if (data.resultType === "scalar") return [{ metric: {}, value: Number(data.result[1]) }];
  return data.result.map((s) => ({ metric: s.metric, value: Number(s.value[1]) }));
}

/** Whether Prometheus scrapes the job's target successfully. */
export async function targetUp(prometheusUrl: string, signal: AbortSignal): Promise<boolean> {
  const res = await fetch(`${prometheusUrl}/api/v1/targets`, { signal });
  const targets = targetsResponseSchema.parse(await res.json()).data.activeTargets;
  return targets.some((t) => t.labels.job === "ci-prober" && t.health === "up");
}

/** The daemon's entry point, built by `npm run build` (scripts/test.sh builds before vitest). */
export function daemonBuilt(): boolean {
  return existsSync(DAEMON_MAIN);
}
