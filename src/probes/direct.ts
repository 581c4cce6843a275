import { normalizeRegistry, parseImageRef } from "../image.js";
import { RegistryClient } from "../registry/client.js";
import { parsePlatform } from "../registry/manifest.js";
import { digestChanged, fullPullDue, fullPullIntervalFor, type PullState } from "./pull-plan.js";
import type { ProbeContext, ProbeOutcome } from "./types.js";

/**
 * `direct`-mode probe bodies: the registry's HTTP API spoken by ci-prober
 * itself, with the credential the runner would use. They throw; runProbe()
 * turns that into a reason.
 */

/** `docker login` for ctx.target: a registry host, or a registry path a path key names (`registry.example.jp/team-a`). */
export async function directLogin(ctx: ProbeContext): Promise<ProbeOutcome> {
  const registry = normalizeRegistry(ctx.target);
  const credential = await ctx.credentialFor(ctx.target);
  ctx.log.step(credential ? `credential ${credential.username} from ${credential.source}` : `no credential for ${registry}`);
  const client = clientFor(ctx, registry, credential);
  try {
    await client.login();
  } finally {
    client.close();
  }
  return {};
}

/**
 * `docker pull` of ctx.target (an image reference) without storing anything.
 * A full pull (config and layers through sha256) when one is due; otherwise a
 * HEAD of the manifest, followed by a full pull when its digest moved.
 */
export async function directPull(ctx: ProbeContext): Promise<ProbeOutcome> {
  const ref = parseImageRef(ctx.target);
  // The whole image name: a path key (`registry.example.jp/team-a`) answers for the images below it.
  const credential = await ctx.credentialFor(ctx.target);
  ctx.log.step(credential ? `credential ${credential.username} from ${credential.source}` : `no credential for ${ref.registry}`);
  const state: PullState = ctx.pullState ?? {};
  const fullEvery = fullPullIntervalFor(ctx.config, ctx.runner, ref.registry);
  const startedAt = Date.now();
  const client = clientFor(ctx, ref.registry, credential);
  try {
    if (!fullPullDue(state, fullEvery, startedAt)) {
      const head = await client.manifestHead(ref);
      const changed = digestChanged(state, head.digest, fullEvery);
      if (head.digest !== undefined) state.digest = head.digest;
      if (!changed) {
        ctx.log.step(fullEvery === undefined ? "manifest check (no full pulls for this registry)" : "manifest check");
        return { bytes: 0, pull: "manifest" };
      }
      ctx.log.step("digest changed: full pull");
    }
    const platform = parsePlatform(ctx.config.registries[ref.registry]?.platform ?? ctx.config.platform);
    const result = await client.pull(ref, platform);
    ctx.log.step(`pulled ${result.digest}: ${result.bytes} bytes`);
    state.lastFullAt = startedAt;
    state.digest = result.topDigest;
    return { bytes: result.bytes, pull: "full" };
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
    onRateLimit: (rateLimit) => ctx.onRateLimit?.(registry, rateLimit),
    onCredentialRefused: () => ctx.onCredentialRefused?.(),
  });
}
