import { spawn } from "node:child_process";
import { scrub, Secret } from "../secret.js";
import { helperGetSchema, helperListSchema } from "./schema.js";

/** How to run credential helpers: the caller's deadline, a per-call timeout, and (for tests) the environment with PATH. */
export interface HelperOptions {
  signal: AbortSignal;
  helperTimeoutMs: number;
  env?: NodeJS.ProcessEnv;
}

export type HelperGetAnswer =
  | { kind: "found"; username: string; secret: Secret; identityToken: boolean }
  | { kind: "not_found" }
  | { kind: "failed"; message: string };

export type HelperListAnswer = { kind: "listed"; servers: Record<string, string> } | { kind: "failed"; message: string };

// docker-credential-helpers' credentials.ErrCredentialsNotFound text; the Docker CLI treats it as "no credential".
const NOT_FOUND = "credentials not found in native keychain";
// The username a helper returns when the secret is an identity (refresh) token.
const TOKEN_USERNAME = "<token>";
const MAX_OUTPUT = 1 << 20;

type HelperRun =
  | { kind: "exited"; code: number | null; stdout: string; stderr: string }
  | { kind: "missing" }
  | { kind: "timeout" }
  | { kind: "spawn_failed"; code: string };

/** `docker-credential-NAME get`: the server URL on stdin, `{ServerURL, Username, Secret}` on stdout. */
export async function helperGet(helper: string, serverUrl: string, opts: HelperOptions): Promise<HelperGetAnswer> {
  const run = await runHelper(helper, "get", serverUrl, opts);
  if (run.kind !== "exited") return { kind: "failed", message: failure(helper, "get", run, opts) };
  if (run.code !== 0) {
    if (run.stdout.includes(NOT_FOUND) || run.stderr.includes(NOT_FOUND)) return { kind: "not_found" };
    return { kind: "failed", message: failure(helper, "get", run, opts) };
  }
  const parsed = helperGetSchema.safeParse(parseJson(run.stdout));
  if (!parsed.success) return { kind: "failed", message: `${program(helper)} get printed no credential-helper JSON` };
  const { Username, Secret: value } = parsed.data;
  if (Username === TOKEN_USERNAME) return { kind: "found", username: "", secret: new Secret(value), identityToken: true };
  return { kind: "found", username: Username, secret: new Secret(value), identityToken: false };
}

/** `docker-credential-NAME list`: a JSON object of server URL → username. */
export async function helperList(helper: string, opts: HelperOptions): Promise<HelperListAnswer> {
  const run = await runHelper(helper, "list", "", opts);
  if (run.kind !== "exited" || run.code !== 0) return { kind: "failed", message: failure(helper, "list", run, opts) };
  const parsed = helperListSchema.safeParse(parseJson(run.stdout));
  if (!parsed.success) return { kind: "failed", message: `${program(helper)} list printed no credential-helper JSON` };
  return { kind: "listed", servers: parsed.data };
}

/** GitLab Runner refuses helper names that are paths; so does ci-prober (a config.json must not run arbitrary files). */
export function isValidHelperName(helper: string): boolean {
  return helper !== "" && !helper.includes("/") && !helper.includes("\\") && helper !== "." && helper !== "..";
}

function program(helper: string): string {
  return `docker-credential-${helper}`;
}

function failure(helper: string, action: string, run: HelperRun, opts: HelperOptions): string {
  switch (run.kind) {
    case "missing":
      return `${program(helper)} is not installed (not found on PATH)`;
    case "timeout":
      return `${program(helper)} ${action} gave no answer within ${opts.helperTimeoutMs}ms`;
    case "spawn_failed":
      return `${program(helper)} could not be started: ${run.code}`;
    case "exited": {
      const detail = safeDetail(run.stdout, run.stderr);
      return `${program(helper)} ${action} exited with code ${run.code ?? "none (killed)"}${detail ? `: ${detail}` : ""}`;
    }
  }
}

/**
 * The helper's own one-line explanation (helpers print errors on stdout, some
 * on stderr). A failing helper might still print a credential, so anything
 * that looks like JSON is dropped, known secrets are scrubbed, and the text is cut short.
 */
function safeDetail(stdout: string, stderr: string): string | undefined {
  const line = `${stdout}\n${stderr}`
    .split("\n")
    .map((l) => l.trim())
    .find((l) => l !== "");
  if (line === undefined || /[{}"]/.test(line)) return undefined;
  const clean = scrub(line);
  return clean.length > 160 ? `${clean.slice(0, 160)}…` : clean;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * Run one helper action with a deadline. The helper runs in its own process
 * group so that a timeout kills whatever it started too (a shell script's
 * `sleep` would otherwise hold the pipes open). Rejects only when the
 * caller's signal aborts; every other outcome is a HelperRun.
 */
function runHelper(helper: string, action: "get" | "list", input: string, opts: HelperOptions): Promise<HelperRun> {
  opts.signal.throwIfAborted();
  return new Promise<HelperRun>((resolve, reject) => {
    const child = spawn(program(helper), [action], { env: opts.env ?? process.env, stdio: ["pipe", "pipe", "pipe"], detached: true });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal.removeEventListener("abort", onAbort);
      fn();
    };
    const kill = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      } catch {
        child.kill("SIGKILL");
      }
      child.stdout.destroy();
      child.stderr.destroy();
      child.stdin.destroy();
    };
    const onAbort = () => {
      kill();
      settle(() => reject(opts.signal.reason));
    };
    const timer = setTimeout(() => {
      kill();
      settle(() => resolve({ kind: "timeout" }));
    }, opts.helperTimeoutMs);
    opts.signal.addEventListener("abort", onAbort, { once: true });
    const collect = (into: Buffer[]) => (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_OUTPUT) into.push(chunk);
    };
    child.stdout.on("data", collect(out));
    child.stderr.on("data", collect(err));
    child.on("error", (e: NodeJS.ErrnoException) => {
      settle(() => resolve(e.code === "ENOENT" ? { kind: "missing" } : { kind: "spawn_failed", code: e.code ?? e.message }));
    });
    child.on("close", (code) => {
      settle(() => resolve({ kind: "exited", code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
    });
    // A helper may exit without reading stdin; the broken pipe is not a failure of its own.
    child.stdin.on("error", () => undefined);
    child.stdin.end(input);
  });
}
