import { normalizeRegistry, parseImageRef } from "../image.js";
import { RegistryClient } from "../registry/client.js";
import { parsePlatform } from "../registry/manifest.js";
import type { ProbeContext, ProbeOutcome } from "./types.js";

/**
 * `direct`-mode probe bodies: the registry's HTTP API spoken by ci-prober
 * itself, with the credential the runner would use. They throw; runProbe()
 * turns that into a reason.
 */

/** `docker login` for ctx.target (a registry host as a credential key). */
export async function directLogin(ctx: ProbeContext): Promise<ProbeOutcome> {
  const registry = normalizeRegistry(ctx.target);
  const credential = await ctx.credentialFor(registry);
  ctx.log.step(credential ? `credential ${credential.username} from ${credential.source}` : `no credential for ${registry}`);
  const client = clientFor(ctx, registry, credential);
  try {
    await client.login();
  } finally {
    client.close();
  }
  return {};
}

/** `docker pull` of ctx.target (an image reference) without storing anything; returns the bytes of config and layers fetched. */
export async function directPull(ctx: ProbeContext): Promise<ProbeOutcome> {
  const ref = parseImageRef(ctx.target);
  const credential = await ctx.credentialFor(ref.registry);
  ctx.log.step(credential ? `credential ${credential.username} from ${credential.source}` : `no credential for ${ref.registry}`);
  const platform = parsePlatform(ctx.config.registries[ref.registry]?.platform ?? ctx.config.platform);
  const client = clientFor(ctx, ref.registry, credential);
  try {
    const result = await client.pull(ref, platform);
    ctx.log.step(`pulled ${result.digest}: ${result.bytes} bytes`);
    return { bytes: result.bytes };
  } finally {
    client.close();
  }
}

function clientFor(ctx: ProbeContext, registry: string, credential: Awaited<ReturnType<ProbeContext["credentialFor"]>>): RegistryClient {
  return new RegistryClient({
    registry,
    credential,
    transport: ctx.config.registries[registry],
    signal: ctx.signal,
    log: (message) => ctx.log.step(message),
  });
}
