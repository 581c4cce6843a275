import { normalizeRegistry, parseImageRef } from "../image.js";
import { RegistryClient } from "../registry/client.js";
import { parsePlatform } from "../registry/manifest.js";
import type { RegistryTransport } from "../config/resolve.js";
import type { Credential } from "../types.js";
import { digestChanged, fullPullDue, type PullState } from "./pull-plan.js";
import type { ProbeBodyContext } from "./types.js";

/**
 * `direct`-mode probe bodies: the registry's HTTP API spoken by ci-prober
 * itself, with the credential the runner would use. They throw; runProbe()
 * turns that into a reason.
 */

/** A login's or a pull's settings: the transport of the registry it talks to, the platform a pull resolves, how often a pull is full. */
export interface RegistrySettings {
  transport?: RegistryTransport;
  platform: string;
  /** Undefined: never a full pull, only manifest HEADs (Docker Hub by default; see pull-plan.ts). */
  fullPullIntervalMs?: number;
}

/** `docker login` for ctx.target: a registry host, or a registry path a path key names (`registry.example.jp/team-a`). */
export async function directLogin(ctx: ProbeBodyContext<RegistrySettings>): Promise<void> {
  const registry = normalizeRegistry(ctx.target);
  const credential = await ctx.credentialFor(ctx.target);
  ctx.log.step(credential ? `credential ${credential.username} from ${credential.source}` : `no credential for ${registry}`);
  const client = clientFor(ctx, registry, credential);
  try {
    await client.login();
  } finally {
    client.close();
  }
}

/**
 * `docker pull` of ctx.target (an image reference) without storing anything.
 * A full pull (config and layers through sha256) when one is due; otherwise a
 * HEAD of the manifest, followed by a full pull when its digest moved.
 */
export async function directPull(ctx: ProbeBodyContext<RegistrySettings>): Promise<void> {
  const ref = parseImageRef(ctx.target);
  // The whole image name: a path key (`registry.example.jp/team-a`) answers for the images below it.
  const credential = await ctx.credentialFor(ctx.target);
  ctx.log.step(credential ? `credential ${credential.username} from ${credential.source}` : `no credential for ${ref.registry}`);
  const state: PullState = ctx.pullState ?? {};
  const fullEvery = ctx.settings.fullPullIntervalMs;
  const startedAt = Date.now();
  const client = clientFor(ctx, ref.registry, credential);
  try {
    if (!fullPullDue(state, fullEvery, startedAt)) {
      const head = await client.manifestHead(ref);
      const changed = digestChanged(state, head.digest, fullEvery);
      if (head.digest !== undefined) state.digest = head.digest;
      if (!changed) {
        ctx.log.step(fullEvery === undefined ? "manifest check (no full pulls for this registry)" : "manifest check");
        ctx.record.bytes(0);
        ctx.record.pull("manifest");
        return;
      }
      ctx.log.step("digest changed: full pull");
    }
    const result = await client.pull(ref, parsePlatform(ctx.settings.platform));
    ctx.log.step(`pulled ${result.digest}: ${result.bytes} bytes`);
    state.lastFullAt = startedAt;
    state.digest = result.topDigest;
    ctx.record.bytes(result.bytes);
    ctx.record.pull("full");
  } finally {
    client.close();
  }
}

function clientFor(ctx: ProbeBodyContext<RegistrySettings>, registry: string, credential: Credential | undefined): RegistryClient {
  return new RegistryClient({
    registry,
    credential,
    transport: ctx.settings.transport,
    signal: ctx.signal,
    log: (message) => ctx.log.step(message),
    onRateLimit: (rateLimit) => ctx.onRateLimit?.(registry, rateLimit),
    onCredentialRefused: () => ctx.onCredentialRefused?.(),
  });
}
