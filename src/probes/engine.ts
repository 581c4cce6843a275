import { checkLogin, engineAuth, type EngineAuth } from "../engine/auth.js";
import { engineFor, type Docker } from "../engine/client.js";
import { pullImage } from "../engine/pull.js";
import { normalizeRegistry, parseImageRef } from "../image.js";
import { ProbeError } from "../reasons.js";
import type { Credential } from "../types.js";
import type { ProbeContext, ProbeOutcome } from "./types.js";

// Probes of `mode: engine`: the runner's own Docker daemon talks to the registry
// with the credential the runner hands it, exactly as for a job.

/** login through the engine's /auth; ctx.target is the registry. */
export async function engineLogin(ctx: ProbeContext): Promise<ProbeOutcome> {
  const registry = normalizeRegistry(ctx.target);
  const credential = await ctx.credentialFor(ctx.target);
  if (!credential) throw new ProbeError("credential_missing", `runner ${ctx.runner.name} holds no credential for ${registry}`);
  const outcome: ProbeOutcome = { credential: credentialInfo(credential) };
  return withOutcome(outcome, async () => {
    ctx.log.step(`credential for ${registry}: user ${credential.username} from ${credential.source}`);
    const auth = engineAuth(credential);
    const docker = await engineFor(ctx.runner, ctx.signal);
    const status = await checkLogin(docker, ctx.runner.dockerHost, auth, ctx.signal);
    ctx.log.step(`POST /auth ${registry} on ${ctx.runner.dockerHost} -> ${status || "ok"}`);
    return outcome;
  });
}

/** pull through the engine's /images/create; ctx.target is the image. */
export async function enginePull(ctx: ProbeContext): Promise<ProbeOutcome> {
  const docker = await engineFor(ctx.runner, ctx.signal);
  return runnerPull(ctx, docker, ctx.target, ctx.runner.fresh ?? false);
}

/**
 * Pull an image with the credential the runner would pick for its registry,
 * anonymously when it holds none (as a job would). The returned outcome
 * carries the bytes fetched and which credential was used; on failure the
 * thrown error carries the credential too, so the page can name its file.
 */
export async function runnerPull(ctx: ProbeContext, docker: Docker, image: string, fresh: boolean): Promise<ProbeOutcome & { bytes: number }> {
  const registry = parseImageRef(image).registry;
  // The whole image name: a path key answers for the images below it, as in GitLab Runner.
  const credential = await ctx.credentialFor(image);
  const outcome: ProbeOutcome = credential ? { credential: credentialInfo(credential) } : {};
  return withOutcome(outcome, async () => {
    let auth: EngineAuth | undefined;
    if (credential) {
      ctx.log.step(`credential for ${registry}: user ${credential.username} from ${credential.source}`);
      auth = engineAuth(credential);
    } else {
      ctx.log.step(`no credential for ${registry}: pulling anonymously`);
    }
    const step = (message: string) => ctx.log.step(message);
    const { bytes } = await pullImage(docker, ctx.runner.dockerHost, image, auth, { signal: ctx.signal, fresh, step });
    ctx.log.step(`pulled ${image} on ${ctx.runner.dockerHost}: ${bytes} bytes fetched`);
    return { ...outcome, bytes };
  });
}

/** What a result may say about a credential: never its secret. */
export function credentialInfo(credential: Credential): NonNullable<ProbeOutcome["credential"]> {
  const { registry, username, kind, source, secretType } = credential;
  return { registry, username, kind, source, secretType };
}

/**
 * Run a step and, when it throws, attach the outcome gathered so far to the
 * error: runProbe() puts an error's `outcome` on the failed result.
 */
export async function withOutcome<T>(outcome: ProbeOutcome, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (err) {
    if (typeof err === "object" && err !== null) Object.assign(err, { outcome: { ...outcome, ...(err as { outcome?: ProbeOutcome }).outcome } });
    throw err;
  }
}
