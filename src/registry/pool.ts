/*
 * What every probe of a registry shares, so that 1,000 runners cost about what
 * one does per request: one TLS secure context per CA (building one from the
 * 144 system roots costs ~38 ms of CPU and ~1 MB of native memory, and
 * tls.connect builds a fresh one for every connection given a `ca`), one pair
 * of keep-alive node:http agents per CA for the small requests, and a few
 * 64 KiB read buffers lent to blob reads while they run. Everything here is
 * bounded: idle sockets close after IDLE_MS, free buffers beyond MAX_FREE_BUFFERS
 * are dropped, and a CA no longer configured leaves the cache after MAX_CAS others.
 */
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { createSecureContext, rootCertificates, type SecureContext } from "node:tls";

/** An idle keep-alive socket closes after this long (registries close theirs after 60-120 s; we go first). */
export const IDLE_MS = 15_000;
/** Sockets per origin for small requests; more requests wait in the agent's queue (under their deadline). */
export const MAX_SOCKETS_PER_ORIGIN = 32;
/**
 * Idle sockets kept per origin, for each of the small-request agent and the blob path: as many as
 * can be busy, so a round at full concurrency reuses its connections instead of closing and
 * reopening them between requests; IDLE_MS closes them once the round is over.
 */
export const MAX_IDLE_PER_ORIGIN = MAX_SOCKETS_PER_ORIGIN;
/**
 * The blob path's read size. 64 KiB and 256 KiB pull 256 MiB in the same 0.6 s (the hash is the
 * cost, not the reads); at 32 probes in flight 64 KiB holds 2 MB of buffers instead of 8, and a
 * 1,000-runner `once` peaked 12 MB lower.
 */
export const READ_BUFFER_BYTES = 64 * 1024;
const MAX_FREE_BUFFERS = 8;
const MAX_CAS = 16;

interface TrustEntry {
  /** Distinguishes connections made under different trust; part of every pool key. */
  id: number;
  context: SecureContext;
  agents: { http: HttpAgent; https: HttpsAgent };
}

const trust = new Map<string, TrustEntry>();
let nextTrustId = 0;

/**
 * The secure context and agents for a registry's configured CA (undefined: the
 * public roots alone). A configured CA is trusted beside the public roots, not
 * instead of them: like Docker, the same trust serves the registry, its token
 * realm (often a GitLab behind the same company CA) and blob storage it
 * redirects to. Keyed by the CA's text, so registries sharing a CA file share one.
 */
export function trustFor(ca: string | undefined): TrustEntry {
  const key = ca ?? "";
  const found = trust.get(key);
  if (found) {
    // Most recently used last: the first entry is the one to evict.
    trust.delete(key);
    trust.set(key, found);
    return found;
  }
  const context = createSecureContext(ca !== undefined ? { ca: [...rootCertificates, ca] } : {});
  const common = { keepAlive: true, maxSockets: MAX_SOCKETS_PER_ORIGIN, maxFreeSockets: MAX_IDLE_PER_ORIGIN, timeout: IDLE_MS };
  const entry: TrustEntry = {
    id: nextTrustId++,
    context,
    agents: { http: new HttpAgent(common), https: new HttpsAgent({ ...common, secureContext: context }) },
  };
  trust.set(key, entry);
  if (trust.size > MAX_CAS) evictOldest();
  return entry;
}

function evictOldest(): void {
  const [key, entry] = trust.entries().next().value ?? [];
  if (key === undefined || entry === undefined) return;
  trust.delete(key);
  // Requests in flight keep their sockets; only idle ones go now, the rest close when done.
  entry.agents.http.destroy();
  entry.agents.https.destroy();
}

/** How many secure contexts exist (tests: one per CA, however many connections). */
export function secureContextCount(): number {
  return trust.size;
}

/**
 * Read buffers for blob requests: lent for one request, given back when it
 * ends. Peak memory is (blob requests in flight) x READ_BUFFER_BYTES, however
 * many bytes are pulled; at most MAX_FREE_BUFFERS stay allocated when idle.
 */
export class BufferPool {
  readonly #free: Buffer[] = [];
  readonly #size: number;
  readonly #maxFree: number;
  #lent = 0;

  constructor(size: number, maxFree: number) {
    this.#size = size;
    this.#maxFree = maxFree;
  }

  take(): Buffer {
    this.#lent++;
    // allocUnsafeSlow: a buffer of its own, not a slice of Node's shared 8 KiB pool.
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(this.#size);
  }

  give(buffer: Buffer): void {
    this.#lent--;
    if (this.#free.length < this.#maxFree) this.#free.push(buffer);
  }

  stats(): { lent: number; free: number } {
    return { lent: this.#lent, free: this.#free.length };
  }
}

export const readBuffers = new BufferPool(READ_BUFFER_BYTES, MAX_FREE_BUFFERS);
