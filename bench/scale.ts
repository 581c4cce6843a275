import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, type Proc, run } from "../test/services/procs.js";
import { type Services, startRegistry, startServices } from "../test/services/index.js";
import { type BenchReport, maxRssMb, measure, median, pushRandomImage, type Sample } from "./lib.js";

const RUNNERS = 1000;
const CONCURRENCY = 32;
const IMAGE_BYTES = 1024 * 1024;
const RUNS = 5;
const INTERVAL_S = 30;
/** After the second round, scrapes go on this long: the quiet until the third. */
const QUIET_MS = 10_000;
/** A third of Prometheus' default scrape interval (15 s): scraped harder than it would be. */
const SCRAPE_EVERY_MS = 5000;
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const MAIN = join(ROOT, "dist", "src", "main.js");
const BARE = join(ROOT, "dist", "bench", "bare-loop.js");
const PROCESS_TIMEOUT_MS = 300_000;
const REPOSITORY = "bench/scale";

interface Account {
  registry: string;
  username: string;
  password: string;
}

/** Both registries' request logs, and the fake GitLab's token requests: the same count for both contenders. */
interface Counters {
  registryRequests(): number;
  tokenRequests(): number;
}

/**
 * 1,000 [[runners]] in one config.toml, each with its own DOCKER_AUTH_CONFIG,
 * half on an htpasswd registry (500 users), half on the token registry (500
 * GitLab users), each pulling a 1 MiB image, concurrency 32: `ci-prober once`
 * against a bare Node loop sending the same requests, alternating, medians;
 * then the daemon on the same config (interval 30 s): /metrics latency, RSS,
 * and whether every probe runs again within one interval.
 */
export async function benchScale(): Promise<BenchReport> {
  const services = await startServices();
  const own: Proc[] = [];
  try {
    const dir = join(services.info.tmp, "bench-scale");
    mkdirSync(dir, { recursive: true });
    const { accounts, counters, registry } = await setUp(services, dir);
    own.push(registry);
    const files = writeConfigs(dir, accounts);
    const once = () =>
      measure(process.execPath, [MAIN, "once", "--config", files.yml, "--json"], { timeoutMs: PROCESS_TIMEOUT_MS, captureStdout: true });
    const bare = () => measure(process.execPath, [BARE, files.plan], { timeoutMs: PROCESS_TIMEOUT_MS, captureStdout: true });
    const ours: Sample[] = [];
    const theirs: Sample[] = [];
    const counts = { ours: [] as string[], theirs: [] as string[] };
    const counted = async (what: () => Promise<Sample>, into: Sample[], notes: string[], check: (s: Sample) => void) => {
      const [r0, t0] = [counters.registryRequests(), counters.tokenRequests()];
      const sample = await what();
      check(sample);
      progress(
        `${what === once ? "once" : "bare"}: ${sample.seconds.toFixed(2)} s, ${(sample.cpuSeconds ?? 0).toFixed(2)} s CPU, ${Math.round(sample.peakRssKb / 1024)} MB`,
      );
      into.push(sample);
      notes.push(`${counters.registryRequests() - r0} registry + ${counters.tokenRequests() - t0} token`);
    };
    progress("set up; warm-up runs");
    // One warm-up each (page cache, registry caches), not counted.
    checkOnce(await once());
    progress("warm-up once done");
    checkBare(await bare());
    progress("warm-up bare loop done");
    for (let i = 0; i < RUNS; i++) {
      await counted(once, ours, counts.ours, checkOnce);
      await counted(bare, theirs, counts.theirs, checkBare);
    }
    progress("daemon");
    const daemon = await daemonRound(files.yml, files.port, counters);
    return report(ours, theirs, counts, daemon);
  } finally {
    for (const p of own) await p.stop();
    await services.stop();
  }
}

function progress(message: string): void {
  process.stderr.write(`bench scale: ${new Date().toISOString().slice(11, 19)} ${message}\n`);
}

function checkOnce(sample: Sample): void {
  const rows = JSON.parse(sample.stdout ?? "[]") as { probe: string; success: boolean; error: string | null }[];
  const failed = rows.filter((r) => !r.success);
  if (rows.length !== RUNNERS * 2 || failed.length > 0) {
    throw new Error(`ci-prober once: ${rows.length} probes, ${failed.length} failed (${failed[0]?.error ?? "-"})`);
  }
}

function checkBare(sample: Sample): void {
  const out = JSON.parse(sample.stdout ?? "{}") as { failures?: number };
  if (out.failures !== 0) throw new Error(`bare loop: ${sample.stdout ?? ""}`);
}

/** An htpasswd registry of 500 users of its own (bcrypt cost 4: the registry checks it on every request), GitLab users for the token registry, the image on both. */
export async function setUp(services: Services, dir: string): Promise<{ accounts: Account[]; counters: Counters; registry: Proc }> {
  const { info, gitlab } = services;
  const half = RUNNERS / 2;
  const suffix = randomBytes(4).toString("hex");
  // Random secrets, as tokens and generated passwords are (a shared prefix is not what a fleet holds).
  const secret = () => randomBytes(12).toString("hex");
  const ht = Array.from({ length: half }, (_, i) => ({ username: `scale-ht-${i}`, password: secret() }));
  const htpasswd = join(dir, "htpasswd");
  const list = join(dir, "users.txt");
  writeFileSync(
    list,
    [{ username: "admin", password: `scale-admin-${suffix}` }, ...ht].map((u) => `${u.username} ${u.password}\n`).join(""),
    { mode: 0o600 },
  );
  await run(
    "sh",
    [
      "-c",
      `while read u p; do htpasswd -bBC 4 ${htpasswd} "$u" "$p" 2>/dev/null || htpasswd -cbBC 4 ${htpasswd} "$u" "$p"; done < ${list}`,
    ],
    {
      timeoutMs: PROCESS_TIMEOUT_MS,
    },
  );
  progress("htpasswd file written");
  const port = await freePort();
  const registry = await startRegistry(
    info.tmp,
    "registry-scale",
    port,
    `auth:\n  htpasswd:\n    realm: ci-prober-scale\n    path: ${htpasswd}\n`,
  );
  const htHost = `127.0.0.1:${port}`;
  await pushRandomImage(
    join(dir, "ht-image"),
    `${htHost}/${REPOSITORY}:latest`,
    IMAGE_BYTES,
    `admin:scale-admin-${suffix}`,
    PROCESS_TIMEOUT_MS,
  );
  const tok = Array.from({ length: half }, (_, i) =>
    gitlab.state.addUser({ username: `scale-tok-${i}`, password: secret(), actions: ["pull"] }),
  );
  await pushRandomImage(
    join(dir, "tok-image"),
    `${info.token.host}/${REPOSITORY}:latest`,
    IMAGE_BYTES,
    `${info.gitlab.admin.username}:${info.gitlab.admin.password}`,
    PROCESS_TIMEOUT_MS,
  );
  progress("images pushed");
  let tokens = 0;
  gitlab.server.on("request", (req) => {
    if ((req.url ?? "").startsWith("/jwt/auth")) tokens++;
  });
  const logs = [registry.logFile, join(info.tmp, "registry-token", "log")];
  const accounts = [
    ...ht.map((u) => ({ registry: htHost, ...u })),
    ...tok.map((u) => ({ registry: info.token.host, username: u.username, password: u.password })),
  ];
  return {
    accounts,
    registry,
    counters: { registryRequests: () => logs.reduce((n, f) => n + accessLines(f), 0), tokenRequests: () => tokens },
  };
}

/** Requests a docker-registry has answered: one access-log line each. */
function accessLines(file: string): number {
  statSync(file);
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => / "(GET|HEAD) \/v2\//.test(l)).length;
}

export function writeConfigs(dir: string, accounts: Account[]): { yml: string; plan: string; port: number } {
  const toml = accounts.map((a, i) => {
    const auth = Buffer.from(`${a.username}:${a.password}`).toString("base64");
    const env = JSON.stringify(`DOCKER_AUTH_CONFIG=${JSON.stringify({ auths: { [a.registry]: { auth } } })}`);
    return [
      `[[runners]]`,
      `  name = "scale-${String(i).padStart(4, "0")}"`,
      `  executor = "docker"`,
      `  environment = [${env}]`,
      `  [runners.docker]`,
      `    image = "${a.registry}/${REPOSITORY}:latest"`,
    ].join("\n");
  });
  const runnerConfig = join(dir, "config.toml");
  writeFileSync(runnerConfig, `concurrent = ${CONCURRENCY}\n\n${toml.join("\n\n")}\n`, { mode: 0o600 });
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const yml = join(dir, "ci-prober.yml");
  writeFileSync(
    yml,
    [
      `interval: ${INTERVAL_S}s`,
      "timeout: 30s",
      `concurrency: ${CONCURRENCY}`,
      `listen_address: 127.0.0.1:${port}`,
      "runners:",
      `  - {runner_config: ${runnerConfig}, mode: direct}`,
      "",
    ].join("\n"),
  );
  const plan = join(dir, "plan.json");
  const runners = accounts.map((a) => ({
    registry: a.registry,
    repository: REPOSITORY,
    tag: "latest",
    username: a.username,
    password: a.password,
  }));
  writeFileSync(plan, JSON.stringify({ concurrency: CONCURRENCY, runners }), { mode: 0o600 });
  return { yml, plan, port };
}

interface DaemonFigures {
  firstRoundSeconds: number;
  secondRoundSeconds: number;
  maxAgeSeconds: number;
  /** Scrapes between rounds (no probe finished since the scrape before) and while probes ran. */
  idleMs: number[];
  busyMs: number[];
  samples: number;
  metricsBytes: number;
  rssMb: number;
  peakRssMb: number;
  skipped: number;
}

/**
 * The daemon on the same config: after its first round, /metrics is scraped
 * every SCRAPE_EVERY_MS (each scrape timed) until every probe has run again and
 * QUIET_MS more have passed; RSS from /proc at the end and its peak.
 */
async function daemonRound(yml: string, port: number, counters: Counters): Promise<DaemonFigures> {
  const child = spawn(process.execPath, [MAIN, "run", "--config", yml], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, CI_PROBER_LOG_LEVEL: "warn" },
  });
  // The log is read only to keep the pipe flowing.
  child.stderr?.resume();
  try {
    const t0 = Date.now();
    await waitReady(port, child);
    const firstRoundSeconds = (Date.now() - t0) / 1000;
    const first = lastRuns(await scrape(port));
    const r0 = counters.registryRequests();
    const idleMs: number[] = [];
    const busyMs: number[] = [];
    let maxAge = 0;
    let previous = first;
    let secondRoundSeconds = Number.NaN;
    let text = "";
    let quietUntil = Number.POSITIVE_INFINITY;
    const deadline = Date.now() + 3 * INTERVAL_S * 1000;
    while (Date.now() < Math.min(deadline, quietUntil)) {
      await new Promise((r) => setTimeout(r, SCRAPE_EVERY_MS));
      const t = performance.now();
      text = await scrape(port);
      const ms = performance.now() - t;
      const now = Date.now() / 1000;
      const runs = lastRuns(text);
      const changed = [...runs].some(([k, at]) => previous.get(k) !== at);
      (changed ? busyMs : idleMs).push(ms);
      previous = runs;
      for (const at of runs.values()) maxAge = Math.max(maxAge, now - at);
      if (Number.isNaN(secondRoundSeconds) && [...first].every(([k, at]) => (runs.get(k) ?? 0) > at)) {
        secondRoundSeconds = Math.max(...runs.values()) - Math.max(...first.values());
        quietUntil = Date.now() + QUIET_MS;
      }
    }
    if (counters.registryRequests() === r0) throw new Error("the daemon sent no request in its second round");
    const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
    const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? Number.NaN);
    return {
      firstRoundSeconds,
      secondRoundSeconds,
      maxAgeSeconds: maxAge,
      idleMs,
      busyMs,
      samples: text.split("\n").filter((l) => l !== "" && !l.startsWith("#")).length,
      metricsBytes: Buffer.byteLength(text),
      rssMb: Math.round(kb("VmRSS") / 1024),
      peakRssMb: Math.round(kb("VmHWM") / 1024),
      skipped: sumOf(text, "ci_prober_probe_skipped_total"),
    };
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
  }
}

async function waitReady(port: number, child: ChildProcess): Promise<void> {
  const until = Date.now() + PROCESS_TIMEOUT_MS;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`ci-prober run exited ${child.exitCode}`);
    const res = await fetch(`http://127.0.0.1:${port}/-/ready`, { signal: AbortSignal.timeout(5000) }).catch(() => undefined);
    if (res?.status === 200) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error("ci-prober run: not ready in time");
}

async function scrape(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(30_000) });
  return res.text();
}

function lastRuns(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line.startsWith("ci_prober_probe_last_run_timestamp_seconds{")) continue;
    const space = line.lastIndexOf(" ");
    out.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return out;
}

function sumOf(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split("\n")) if (line.startsWith(`${name}{`)) sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  return sum;
}

function report(ours: Sample[], theirs: Sample[], counts: { ours: string[]; theirs: string[] }, d: DaemonFigures): BenchReport {
  const wall = (s: Sample[]) => median(s.map((x) => x.seconds));
  const cpu = (s: Sample[]) => median(s.map((x) => x.cpuSeconds ?? 0));
  const ratio = wall(ours) / wall(theirs);
  const rss = maxRssMb(ours);
  const idle = median(d.idleMs);
  const busy = median(d.busyMs);
  const ms = (xs: number[]) => xs.map((m) => m.toFixed(0)).join("/");
  const verdict = (ok: boolean) => (ok ? "met" : "NOT met");
  return {
    name: `scale: ${RUNNERS} runners (half htpasswd, half token auth), ${IMAGE_BYTES / 1024 / 1024} MiB image each, concurrency ${CONCURRENCY}`,
    rows: [
      { tool: "ci-prober once", medianSeconds: wall(ours), ratio, peakRssMb: rss },
      { tool: "bare Node loop, same requests", medianSeconds: wall(theirs), ratio: 1, peakRssMb: maxRssMb(theirs) },
    ],
    notes: [
      `${RUNS} runs each, alternating, after one warm-up each; client CPU (user+sys) median: ci-prober ${cpu(ours).toFixed(2)} s, bare loop ${cpu(theirs).toFixed(2)} s`,
      `requests per run as the registries' access logs and GitLab's /jwt/auth counted them: ci-prober ${counts.ours.join(", ")}; bare loop ${counts.theirs.join(", ")}`,
      `goal once <= 1.1x the bare loop: ${ratio.toFixed(2)}x ${verdict(ratio <= 1.1)}; peak RSS <= 150 MB: ${rss} MB ${verdict(rss <= 150)}`,
      `daemon (interval ${INTERVAL_S}s): first round ${d.firstRoundSeconds.toFixed(1)} s; /metrics (${d.samples} samples, ${(d.metricsBytes / 1e6).toFixed(1)} MB) ` +
        `between rounds median ${idle.toFixed(0)} ms (${ms(d.idleMs)}): ${verdict(idle <= 100)}; while probes run median ${busy.toFixed(0)} ms (${ms(d.busyMs)}): ` +
        `${verdict(busy <= 100)} (goal <= 100 ms)`,
      `daemon RSS ${d.rssMb} MB, peak ${d.peakRssMb} MB: ${verdict(d.peakRssMb <= 200)} (goal <= 200 MB)`,
      `second round: every probe ran again ${d.secondRoundSeconds.toFixed(1)} s after its first-round run at the latest; largest last-run age seen ${d.maxAgeSeconds.toFixed(1)} s; ` +
        `ci_prober_probe_skipped_total ${d.skipped}: ${verdict(d.skipped === 0 && d.maxAgeSeconds <= INTERVAL_S + 30)} (goal: no skips, every probe once per interval)`,
    ],
  };
}
