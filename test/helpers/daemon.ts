import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { MAIN } from "./cli.js";
import { assertOneInUse, parseMetrics, type Sample } from "./metrics.js";

/** Calls gc() every ~150 ms in the process it is required into (test/support/aged-preload.cjs). */
export const AGED_PRELOAD = fileURLToPath(new URL("../support/aged-preload.cjs", import.meta.url));
/** The environment of an aged daemon: collections as often as weeks of running make them matter. */
export const AGED_ENV = { NODE_OPTIONS: `--expose-gc --require ${AGED_PRELOAD}` };

/** One JSON line of the daemon's log. */
export interface LogRecord {
  level: string;
  time: string;
  msg: string;
  [field: string]: unknown;
}

/** The daemon's JSON log lines, parsed (anything else it printed is left out). */
export function logRecords(log: string): LogRecord[] {
  return log
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as LogRecord);
}

/** A ci-prober daemon run as a real process, with its log kept for assertions. */
export interface DaemonProc {
  url: string;
  child: ChildProcess;
  log(): string;
  metrics(): Promise<Sample[]>;
  get(path: string): Promise<{ status: number; body: string }>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

export async function startDaemonProc(configFile: string, port: number, env: NodeJS.ProcessEnv = {}): Promise<DaemonProc> {
  const child = spawn(process.execPath, [MAIN, "run", "--config", configFile], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", CI_PROBER_LOG_LEVEL: "debug", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  const get = async (path: string) => {
    const res = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(5000) });
    return { status: res.status, body: await res.text() };
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`daemon exited ${child.exitCode}: ${output}`);
    try {
      if ((await get("/-/healthy")).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`daemon did not start: ${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    child,
    log: () => output,
    get,
    // Every daemon a test runs, on every config, keeps the in_use invariant of credential_info.
    metrics: async () => assertOneInUse(parseMetrics((await get("/metrics")).body)),
    async stop() {
      if (child.exitCode === null) child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

/** Poll until check() returns a value (not undefined) or the deadline passes. */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
