import type { ProbeKind } from "../types.js";
import { runProbe } from "./run.js";
import type { ProbeContext, ProbeFn } from "./types.js";

// Probe bodies are imported when first used: engine mode pulls in dockerode
// (~0.3 s, 30 MB) and direct mode undici, and a command pays only for what it runs.

async function login(ctx: ProbeContext) {
  return runProbe("login", ctx, async (c) =>
    c.runner.mode === "engine" ? (await import("./engine.js")).engineLogin(c) : (await import("./direct.js")).directLogin(c),
  );
}

async function pull(ctx: ProbeContext) {
  return runProbe("pull", ctx, async (c) =>
    c.runner.mode === "engine" ? (await import("./engine.js")).enginePull(c) : (await import("./direct.js")).directPull(c),
  );
}

async function canary(ctx: ProbeContext) {
  return runProbe("canary", ctx, async (c) => (await import("./canary-local.js")).localCanary(c));
}

/** The one list of probe kinds: name → function. */
export const PROBES: Record<ProbeKind, ProbeFn> = { login, pull, canary };
