/*
 * The soak: one aged daemon (gc() every 150 ms, test/support/aged-preload.cjs) probing the real
 * registries at a short interval for minutes, with a GitLab user whose credential the token
 * registry uses blocked and unblocked every few seconds. The preload samples the daemon's heap
 * after GC, RSS, open fds and active resources; this process samples /metrics (series, latency).
 * After the warm-up, the median of the last fifth of the samples may not exceed the median of
 * the first fifth by more than 10 % (plus a small absolute slack for small counts).
 *
 *   npm run soak                       5 minutes, the services started here
 *   npm run soak -- --duration 10m     longer
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseDuration } from "../src/duration.js";
import type { ServicesInfo } from "../test/services/index.js";
import { freePort } from "../test/services/procs.js";

// Run as dist/bench/soak.js (npm run soak) or as bench/soak.ts (the suite's short soak): the daemon
// is always the built one, the preload is plain CommonJS in the source tree.
const BUILT = import.meta.url.includes("/dist/bench/");
const MAIN = fileURLToPath(new URL(BUILT ? "../src/main.js" : "../dist/src/main.js", import.meta.url));
const PRELOAD = fileURLToPath(new URL(BUILT ? "../../test/support/aged-preload.cjs" : "../test/support/aged-preload.cjs", import.meta.url));

interface GitlabUser {
  username: string;
  password: string;
}

export interface SoakOptions {
  durationMs: number;
  warmupMs: number;
  sampleMs: number;
  /** Every this often the GitLab user behind the token registry's credential is blocked, then unblocked. */
  revokeEveryMs: number;
  services: ServicesInfo;
  /** Progress lines go here (the suite's short version passes none). */
  progress?: (line: string) => void;
}

/** One figure: its median in the first and the last fifth after the warm-up, and whether it grew. */
export interface Trend {
  name: string;
  unit: string;
  start: number;
  end: number;
  limit: number;
  grew: boolean;
}

export interface SoakReport {
  seconds: number;
  rounds: number;
  results: { succeeded: number; failed: number; backingOff: number };
  revocations: number;
  trends: Trend[];
  /** Lines of the daemon's log at error level (none expected). */
  errors: string[];
}

interface DaemonSample {
  t: number;
  heapAfterGc: number;
  rss: number;
  fds: number;
  resources: Record<string, number>;
}

interface ScrapeSample {
  t: number;
  series: number;
  /** /metrics, fastest of three. */
  ms: number;
  /** /-/healthy, fastest of three: what the same machine takes for an answer with no work in it. */
  peerMs: number;
}

export async function runSoak(opts: SoakOptions): Promise<SoakReport> {
  const dir = mkdtempSync(join(tmpdir(), "ci-prober-soak-"));
  const token = await newGitlabUser(opts.services.gitlab.url, "soak-token-user");
  const apiToken = await rootApiToken(opts.services.gitlab.url);
  const port = await freePort();
  const file = writeSoakConfig(dir, opts.services, token, apiToken, port);
  const samples = join(dir, "samples.jsonl");
  const daemon = startDaemon(file, samples, opts.sampleMs);
  const url = `http://127.0.0.1:${port}`;
  const scrapes: ScrapeSample[] = [];
  let revocations = 0;
  try {
    await waitReady(url, daemon.child);
    const t0 = Date.now();
    let blocked = false;
    let nextRevoke = t0 + opts.revokeEveryMs;
    let nextProgress = t0 + 30_000;
    while (Date.now() < t0 + opts.durationMs) {
      if (daemon.child.exitCode !== null) throw new Error(`daemon exited ${daemon.child.exitCode}`);
      scrapes.push(await scrape(url));
      if (Date.now() >= nextRevoke) {
        blocked = !blocked;
        if (blocked) revocations++;
        await setUserState(opts.services.gitlab.url, token.username, blocked ? "blocked" : "active");
        nextRevoke += opts.revokeEveryMs;
      }
      if (Date.now() >= nextProgress) {
        opts.progress?.(`soak: ${Math.round((Date.now() - t0) / 1000)} s, ${daemon.counts.succeeded + daemon.counts.failed} results`);
        nextProgress += 30_000;
      }
      await new Promise((r) => setTimeout(r, opts.sampleMs));
    }
    const seconds = (Date.now() - t0) / 1000;
    const fromDaemon = readSamples(samples).filter((s) => s.t >= t0 + opts.warmupMs);
    const fromScrapes = scrapes.filter((s) => s.t >= t0 + opts.warmupMs);
    return {
      seconds,
      rounds: daemon.counts.rounds,
      results: { succeeded: daemon.counts.succeeded, failed: daemon.counts.failed, backingOff: daemon.counts.backingOff },
      revocations,
      trends: trends(fromDaemon, fromScrapes),
      errors: daemon.errors,
    };
  } finally {
    await daemon.stop();
  }
}

/** Two runners in direct mode against the two registries; GitLab owner checks on; 1 s interval. */
function writeSoakConfig(dir: string, services: ServicesInfo, token: GitlabUser, apiToken: string, port: number): string {
  const ht = writeAuths(join(dir, "htpasswd"), services.htpasswd.host, "alice", services.htpasswd.users.alice ?? "");
  const tok = writeAuths(join(dir, "token"), services.token.host, token.username, token.password);
  const file = join(dir, "ci-prober.yml");
  writeFileSync(
    file,
    [
      "interval: 1s",
      "timeout: 5s",
      "full_pull_interval: 0s",
      `listen_address: 127.0.0.1:${port}`,
      // The owner checks run too: the GitLab client's deadlines and a blocked owner, every 2 s.
      `gitlab: {url: "${services.gitlab.url}", token_file: ${writeSecretFile(dir, apiToken)}, interval: 2s}`,
      "runners:",
      `  - {name: soak-htpasswd, docker_config: ${ht}, mode: direct, images: ["${services.htpasswd.image}"]}`,
      `  - {name: soak-token, docker_config: ${tok}, mode: direct, images: ["${services.token.image}"]}`,
      "",
    ].join("\n"),
  );
  return file;
}

function writeSecretFile(dir: string, value: string): string {
  const file = join(dir, "gitlab-token");
  writeFileSync(file, `${value}\n`);
  return file;
}

function writeAuths(dir: string, registry: string, username: string, password: string): string {
  const file = `${dir}.json`;
  writeFileSync(file, JSON.stringify({ auths: { [registry]: { auth: Buffer.from(`${username}:${password}`).toString("base64") } } }));
  return file;
}

interface SoakDaemon {
  child: ChildProcess;
  counts: { rounds: number; succeeded: number; failed: number; backingOff: number };
  errors: string[];
  stop(): Promise<void>;
}

/** The daemon, aged, its log read line by line into counts (a five-minute log is not kept). */
function startDaemon(file: string, samples: string, sampleMs: number): SoakDaemon {
  const child = spawn(process.execPath, [MAIN, "run", "--config", file], {
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: process.env.HOME ?? "/root",
      CI_PROBER_LOG_LEVEL: "info",
      NODE_OPTIONS: `--expose-gc --require ${PRELOAD}`,
      CI_PROBER_SAMPLE_FILE: samples,
      CI_PROBER_SAMPLE_MS: String(sampleMs),
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const counts = { rounds: 0, succeeded: 0, failed: 0, backingOff: 0 };
  const errors: string[] = [];
  let rest = "";
  child.stderr?.on("data", (d: Buffer) => {
    const lines = (rest + d.toString()).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) countLine(line, counts, errors);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    child,
    counts,
    errors,
    async stop() {
      if (child.exitCode === null) child.kill("SIGTERM");
      const kill = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(kill);
    },
  };
}

function countLine(line: string, counts: SoakDaemon["counts"], errors: string[]): void {
  if (!line.startsWith("{")) return;
  const rec = JSON.parse(line) as { level?: string; msg?: string; probe?: string; runner?: string };
  if (rec.level === "error" || rec.level === "fatal") errors.push(line);
  if (rec.msg === "probe succeeded") counts.succeeded++;
  else if (rec.msg === "probe failed") counts.failed++;
  else if (rec.msg === "probe backing off") counts.backingOff++;
  // A round is one run of every probe; the healthy runner's login runs once in each.
  const ran = rec.msg === "probe succeeded" || rec.msg === "probe failed";
  if (ran && rec.probe === "login" && rec.runner === "soak-htpasswd") counts.rounds++;
}

/**
 * /metrics and, as its peer in the same moment, /-/healthy (the same server, no work): three of each,
 * the fastest kept, since the others also wait on a machine shared with other work.
 */
async function scrape(url: string): Promise<ScrapeSample> {
  const fastest = async (path: string) => {
    let ms = Number.POSITIVE_INFINITY;
    let body = "";
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const res = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(10_000) });
      body = await res.text();
      ms = Math.min(ms, performance.now() - t0);
    }
    return { ms, body };
  };
  const metrics = await fastest("/metrics");
  const healthy = await fastest("/-/healthy");
  const series = metrics.body.split("\n").filter((l) => l !== "" && !l.startsWith("#")).length;
  return { t: Date.now(), ms: metrics.ms, peerMs: healthy.ms, series };
}

async function waitReady(url: string, child: ChildProcess): Promise<void> {
  const until = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`daemon exited ${child.exitCode} before it was ready`);
    try {
      if ((await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2000) })).status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > until) throw new Error("daemon not ready within 30 s");
    await new Promise((r) => setTimeout(r, 200));
  }
}

function readSamples(file: string): DaemonSample[] {
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as DaemonSample);
}

/** Each figure's median in the first and last fifth of the samples after the warm-up. */
function trends(daemon: DaemonSample[], scrapes: ScrapeSample[]): Trend[] {
  const mb = (n: number) => n / 1024 / 1024;
  const timers = (s: DaemonSample) => (s.resources.Timeout ?? 0) + (s.resources.Immediate ?? 0);
  const handles = (s: DaemonSample) => Object.values(s.resources).reduce((a, b) => a + b, 0);
  return [
    trend(
      "heap after GC",
      "MB",
      daemon.map((s) => mb(s.heapAfterGc)),
      0.1,
      1,
    ),
    trend(
      "RSS",
      "MB",
      daemon.map((s) => mb(s.rss)),
      0.1,
      2,
    ),
    trend(
      "open fds",
      "",
      daemon.map((s) => s.fds),
      0.1,
      2,
    ),
    trend("timers", "", daemon.map(timers), 0.1, 2),
    trend("active resources", "", daemon.map(handles), 0.1, 3),
    trend(
      "series",
      "",
      scrapes.map((s) => s.series),
      0.1,
      0,
    ),
    // Milliseconds on a shared machine: 10 % of a few ms is below its noise, hence 3 ms of slack; the
    // trend is on what /metrics takes beyond /-/healthy, measured in the same moment.
    trend(
      "/metrics latency",
      "ms",
      scrapes.map((s) => s.ms),
      0.1,
      3,
      scrapes.map((s) => s.ms - s.peerMs),
    ),
    // The peer is the machine's own noise: shown, never judged.
    {
      ...trend(
        "/-/healthy latency (peer)",
        "ms",
        scrapes.map((s) => s.peerMs),
        0.1,
        3,
      ),
      grew: false,
    },
  ];
}

/** `judged` (default: the values themselves) decides whether it grew; the report shows the values. */
function trend(name: string, unit: string, values: number[], ratio: number, slack: number, judged: number[] = values): Trend {
  if (values.length < 10) throw new Error(`soak: only ${values.length} samples of ${name} after the warm-up; run longer`);
  const fifth = Math.max(2, Math.floor(values.length / 5));
  const start = median(values.slice(0, fifth));
  const end = median(values.slice(-fifth));
  const judgedStart = median(judged.slice(0, fifth));
  const judgedEnd = median(judged.slice(-fifth));
  const limit = start + (Math.max(0, judgedStart) * ratio + slack);
  return { name, unit, start, end, limit, grew: judgedEnd > Math.max(0, judgedStart) * (1 + ratio) + slack };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

async function newGitlabUser(gitlabUrl: string, prefix: string): Promise<GitlabUser> {
  const username = `${prefix}-${Date.now().toString(36)}`;
  const password = `pw-${Math.random().toString(36).slice(2)}-${Date.now().toString(36)}`;
  const body = JSON.stringify({ username, password });
  const res = await fetch(`${gitlabUrl}/-/test/users`, { method: "POST", body, signal: AbortSignal.timeout(5000) });
  if (res.status !== 201) throw new Error(`soak: create user ${username}: HTTP ${res.status}`);
  return { username, password };
}

async function rootApiToken(gitlabUrl: string): Promise<string> {
  const body = JSON.stringify({ username: "root" });
  const res = await fetch(`${gitlabUrl}/-/test/tokens`, { method: "POST", body, signal: AbortSignal.timeout(5000) });
  return ((await res.json()) as { token: string }).token;
}

async function setUserState(gitlabUrl: string, username: string, state: string): Promise<void> {
  const res = await fetch(`${gitlabUrl}/-/test/users/${encodeURIComponent(username)}/state`, {
    method: "POST",
    body: JSON.stringify({ state }),
    signal: AbortSignal.timeout(5000),
  });
  if (res.status !== 200) throw new Error(`soak: set state of ${username}: HTTP ${res.status}`);
}

/** The report as the README shows it. */
export function formatSoak(r: SoakReport): string {
  const results = `${r.results.succeeded} ok, ${r.results.failed} failed, ${r.results.backingOff} backing off`;
  const rounds = `rounds ${r.rounds} in ${Math.round(r.seconds)} s`;
  const head = `${rounds}; results ${results}; ${r.revocations} revocations; error lines ${r.errors.length}`;
  const lines = [head, "| figure | after warm-up | at the end | limit | |", "|---|---|---|---|---|"];
  for (const t of r.trends) {
    const f = (n: number) => `${n.toFixed(t.unit === "" ? 0 : 1)}${t.unit ? ` ${t.unit}` : ""}`;
    lines.push(`| ${t.name} | ${f(t.start)} | ${f(t.end)} | ${f(t.limit)} | ${t.grew ? "GREW" : "ok"} |`);
  }
  return lines.join("\n");
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const flag = (name: string, fallback: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? (args[i + 1] ?? fallback) : fallback;
  };
  const durationMs = parseDuration(flag("--duration", "5m")) ?? 300_000;
  const warmupMs = parseDuration(flag("--warmup", "60s")) ?? 60_000;
  const { startServices } = await import("../test/services/index.js");
  process.stderr.write("soak: starting the registries and the fake GitLab\n");
  // The test images are pushed from the dockerd-imported busybox; the daemon probes in direct mode only.
  const services = await startServices();
  try {
    const progress = (line: string) => process.stderr.write(`${line}\n`);
    const report = await runSoak({ durationMs, warmupMs, sampleMs: 1000, revokeEveryMs: 5000, services: services.info, progress });
    process.stdout.write(`${formatSoak(report)}\n`);
    const grew = report.trends.filter((t) => t.grew);
    if (grew.length > 0 || report.errors.length > 0) {
      process.stderr.write(`soak: FAILED: ${[...grew.map((t) => `${t.name} grew`), ...report.errors.slice(0, 3)].join("; ")}\n`);
      process.exitCode = 1;
    }
  } finally {
    await services.stop();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`soak: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
