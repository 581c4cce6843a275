import { createHash } from "node:crypto";
import bcrypt from "bcryptjs";

// exporter-toolkit's fixed hash of "fakepassword": an unknown user costs the same bcrypt time as a known one,
// so response times do not tell which users exist.
const FAKE_HASH = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";
const CACHE_SIZE = 100;

/**
 * HTTP basic auth against bcrypt hashes, as exporter-toolkit's webHandler does it: one bcrypt at a time
 * (it is CPU-bound, and here it runs on the event loop), results cached per (user, hash, password), so a
 * Prometheus scraping every 15 s pays the ~0.1 s once. The cache key is a SHA-256, never the password itself.
 */
export class BasicAuth {
  readonly #cache = new Map<string, boolean>();
  #queue: Promise<unknown> = Promise.resolve();

  /** Whether the Authorization header names a user of `users` with the right password. */
  async check(users: ReadonlyMap<string, string>, authorization: string | undefined): Promise<boolean> {
    const given = parseBasic(authorization);
    if (!given) return false;
    const known = users.get(given.user);
    const hash = known ?? FAKE_HASH;
    const key = createHash("sha256").update(`${given.user}\0${hash}\0${given.password}`).digest("hex");
    let ok = this.#cache.get(key);
    if (ok === undefined) {
      ok = await this.#compare(given.password, hash);
      this.#remember(key, ok);
    }
    return ok && known !== undefined;
  }

  #compare(password: string, hash: string): Promise<boolean> {
    const next = this.#queue.then(() => bcrypt.compare(password, hash));
    this.#queue = next.catch(() => false);
    return next.catch(() => false);
  }

  #remember(key: string, ok: boolean): void {
    if (this.#cache.size >= CACHE_SIZE) {
      // Drop the oldest tenth at once, so a full cache does not evict on every request.
      for (const old of [...this.#cache.keys()].slice(0, CACHE_SIZE / 10)) this.#cache.delete(old);
    }
    this.#cache.set(key, ok);
  }
}

/** Go's Request.BasicAuth: "Basic " in any case, strict base64, user and password split at the first colon. */
export function parseBasic(header: string | undefined): { user: string; password: string } | undefined {
  if (!header || header.length < 6 || header.slice(0, 6).toLowerCase() !== "basic ") return undefined;
  const encoded = header.slice(6);
  if (encoded.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(encoded)) return undefined;
  const decoded = Buffer.from(encoded, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
