import { spawn } from "node:child_process";

/** One benchmark's outcome, printed by bench/index.ts. */
export interface BenchReport {
  name: string;
  rows: { tool: string; medianSeconds: number; ratio?: number; peakRssMb?: number }[];
  notes: string[];
}

/** One run of a whole process: wall time and peak RSS. */
export interface Sample {
  seconds: number;
  peakRssKb: number;
}

export interface MeasureOptions {
  env?: Record<string, string>;
  input?: string;
  timeoutMs: number;
}

/**
 * Run a command to its end under /usr/bin/time (the `time` package) for its
 * peak RSS, timing it from spawn to exit; rejects when it fails. For a
 * `sh -c` pipeline the RSS is the largest of the shell's waited-for children.
 */
export function measure(cmd: string, args: string[], opts: MeasureOptions): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn("/usr/bin/time", ["-f", "%M", cmd, ...args], {
      env: { ...process.env, ...opts.env },
      stdio: ["pipe", "ignore", "pipe"],
      signal: AbortSignal.timeout(opts.timeoutMs),
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      const seconds = (performance.now() - t0) / 1000;
      const lines = stderr.trim().split("\n");
      const peakRssKb = Number(lines.at(-1));
      if (code !== 0) reject(new Error(`${cmd} ${args[0] ?? ""} exited ${code}: ${lines.slice(-3).join(" ")}`));
      else resolve({ seconds, peakRssKb });
    });
    child.stdin.end(opts.input ?? "");
  });
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

export function maxRssMb(samples: Sample[]): number {
  return Math.round(Math.max(...samples.map((s) => s.peakRssKb)) / 1024);
}

export function medianSeconds(samples: Sample[]): number {
  return median(samples.map((s) => s.seconds));
}

/**
 * Run `ci-prober once --json` and insist that every probe passed, so a
 * benchmark never times a failing run. Throws with what `once` printed.
 */
export async function assertOnceSucceeds(main: string, config: string, timeoutMs: number): Promise<void> {
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, [main, "once", "--config", config, "--json"], { stdio: ["ignore", "pipe", "inherit"], signal: AbortSignal.timeout(timeoutMs) });
    let text = "";
    child.stdout.on("data", (d: Buffer) => (text += d.toString()));
    child.on("error", reject);
    child.on("close", () => resolve(text));
  });
  let rows: { probe: string; success: boolean }[] = [];
  try {
    rows = JSON.parse(out) as { probe: string; success: boolean }[];
  } catch {
    throw new Error(`ci-prober once printed no JSON: ${out.slice(0, 200)}`);
  }
  if (!rows.some((r) => r.probe === "pull") || !rows.every((r) => r.success)) throw new Error(`ci-prober once did not pass: ${out}`);
}
