import { checkLogin, engineAuth, type EngineAuth } from "../engine/auth.js";
import { engineFor, type Docker } from "../engine/client.js";
import { pullImage } from "../engine/pull.js";
import { normalizeRegistry, parseImageRef } from "../image.js";
import { ProbeError } from "../reasons.js";
import type { ProbeBodyContext } from "./types.js";

// Probes of `mode: engine`: the runner's own Docker daemon talks to the registry
// with the credential the runner hands it, exactly as for a job.

/** login through the engine's /auth; ctx.target is the registry. */
export async function engineLogin(ctx: ProbeBodyContext): Promise<void> {
  const registry = normalizeRegistry(ctx.target);
  const credential = await ctx.credentialFor(ctx.target);
  if (!credential) throw new ProbeError("credential_missing", `runner ${ctx.runner.name} holds no credential for ${registry}`);
  ctx.log.step(`credential for ${registry}: user ${credential.username} from ${credential.source}`);
  const auth = engineAuth(credential);
  const docker = await engineFor(ctx.runner, ctx.signal);
  const status = await checkLogin(docker, ctx.runner.dockerHost, auth, ctx.signal);
  ctx.log.step(`POST /auth ${registry} on ${ctx.runner.dockerHost} -> ${status || "ok"}`);
}

/** pull through the engine's /images/create; ctx.target is the image. */
export async function enginePull(ctx: ProbeBodyContext): Promise<void> {
  const docker = await engineFor(ctx.runner, ctx.signal);
  ctx.record.bytes(await runnerPull(ctx, docker, ctx.target, ctx.runner.fresh ?? false));
}

/**
 * Pull an image with the credential the runner would pick for its registry,
 * anonymously when it holds none (as a job would); returns the bytes fetched.
 * The credential is on the record as soon as it is looked up, so a failed
 * pull still names its file.
 */
export async function runnerPull(ctx: ProbeBodyContext, docker: Docker, image: string, fresh: boolean): Promise<number> {
  const registry = parseImageRef(image).registry;
  // The whole image name: a path key answers for the images below it, as in GitLab Runner.
  const credential = await ctx.credentialFor(image);
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
  return bytes;
}
