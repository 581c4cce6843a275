import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "../test/services/procs.js";

/** One benchmark's outcome, printed by bench/index.ts. */
export interface BenchReport {
  name: string;
  rows: { tool: string; medianSeconds: number; ratio?: number; peakRssMb?: number }[];
  notes: string[];
}

/** One run of a whole process: wall time, peak RSS and CPU time (user + system). */
export interface Sample {
  seconds: number;
  peakRssKb: number;
  cpuSeconds?: number;
  /** What the process printed on stdout, when asked for. */
  stdout?: string;
}

export interface MeasureOptions {
  env?: Record<string, string>;
  input?: string;
  timeoutMs: number;
  /** Keep stdout in the sample. */
  captureStdout?: boolean;
}

/**
 * Run a command to its end under /usr/bin/time (the `time` package) for its
 * peak RSS, timing it from spawn to exit; rejects when it fails. For a
 * `sh -c` pipeline the RSS is the largest of the shell's waited-for children.
 */
export function measure(cmd: string, args: string[], opts: MeasureOptions): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn("/usr/bin/time", ["-f", "%M %U %S", cmd, ...args], {
      env: { ...process.env, ...opts.env },
      stdio: ["pipe", opts.captureStdout === true ? "pipe" : "ignore", "pipe"],
      signal: AbortSignal.timeout(opts.timeoutMs),
    });
    let stderr = "";
    let stdout = "";
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      const seconds = (performance.now() - t0) / 1000;
      const lines = stderr.trim().split("\n");
      const [rss, user, system] = (lines.at(-1) ?? "").split(" ").map(Number);
      const peakRssKb = rss ?? Number.NaN;
      const cpuSeconds = (user ?? 0) + (system ?? 0);
      if (code !== 0) reject(new Error(`${cmd} ${args[0] ?? ""} exited ${code}: ${lines.slice(-3).join(" ")}`));
      else resolve({ seconds, peakRssKb, cpuSeconds, ...(opts.captureStdout === true ? { stdout } : {}) });
    });
    child.stdin?.end(opts.input ?? "");
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
    const child = spawn(process.execPath, [main, "once", "--config", config, "--json"], {
      stdio: ["ignore", "pipe", "inherit"],
      signal: AbortSignal.timeout(timeoutMs),
    });
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

/** A single-layer OCI image of `bytes` of random data, laid out by hand and pushed with skopeo (no dockerd involved). */
export async function pushRandomImage(dir: string, image: string, bytes: number, creds: string, timeoutMs: number): Promise<void> {
  const rootfs = join(dir, "rootfs");
  const layout = join(dir, "layout");
  const blobs = join(layout, "blobs", "sha256");
  mkdirSync(rootfs, { recursive: true });
  mkdirSync(blobs, { recursive: true });
  await run("sh", ["-c", `head -c ${bytes} /dev/urandom > "${join(rootfs, "data.bin")}"`]);
  const layerTar = join(dir, "layer.tar");
  await run("tar", ["-C", rootfs, "-cf", layerTar, "."]);
  rmSync(rootfs, { recursive: true, force: true });
  const layerDigest = await sha256File(layerTar);
  const layerSize = statSync(layerTar).size;
  renameSync(layerTar, join(blobs, layerDigest));
  const config = JSON.stringify({
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: [`sha256:${layerDigest}`] },
    config: {},
  });
  const configDigest = writeBlob(blobs, config);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: `sha256:${configDigest}`, size: Buffer.byteLength(config) },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: `sha256:${layerDigest}`, size: layerSize }],
  });
  const manifestDigest = writeBlob(blobs, manifest);
  const ref = {
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: `sha256:${manifestDigest}`,
    size: Buffer.byteLength(manifest),
  };
  writeFileSync(
    join(layout, "index.json"),
    JSON.stringify({ schemaVersion: 2, manifests: [{ ...ref, annotations: { "org.opencontainers.image.ref.name": "img" } }] }),
  );
  writeFileSync(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await run("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", creds, `oci:${layout}:img`, `docker://${image}`], {
    timeoutMs,
  });
  rmSync(layout, { recursive: true, force: true });
}

function writeBlob(blobs: string, text: string): string {
  const digest = createHash("sha256").update(text).digest("hex");
  writeFileSync(join(blobs, digest), text);
  return digest;
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
