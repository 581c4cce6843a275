import { createHash } from "node:crypto";
import { ProbeError } from "../reasons.js";
import { digestAlgorithm } from "./manifest.js";
import { streamGet } from "./rawget.js";
import type { Descriptor } from "./schema.js";
import { isRedirect, redirectHop } from "../redirect.js";
import { endpointOf, statusError, USER_AGENT } from "./transport.js";

export interface BlobFetch {
  /** The registry's origin: the only one that gets its Authorization. */
  registryOrigin: string;
  authorization: string | undefined;
  ca: string | undefined;
  signal: AbortSignal;
  log(message: string): void;
}

/**
 * Fetch a blob, following redirects (blob storage often answers elsewhere)
 * without taking the registry's Authorization to another origin, and stream it
 * through its digest's hash, never to disk. More bytes than the descriptor's
 * size, fewer, or another digest is `digest_mismatch`; a body cut off mid-way
 * is `bad_response`. Returns the bytes read.
 */
export async function fetchBlob(url: URL, desc: Descriptor, opts: BlobFetch): Promise<number> {
  const hash = createHash(digestAlgorithm(desc.digest));
  let received = 0;
  const first = endpointOf("GET", url);
  let hop = { url, credentials: url.origin === opts.registryOrigin };
  for (let hops = 0; ; hops++) {
    const endpoint = endpointOf("GET", hop.url);
    const res = await streamGet(hop.url, endpoint, {
      ...(opts.authorization !== undefined && hop.credentials ? { authorization: opts.authorization } : {}),
      ...(opts.ca !== undefined ? { ca: opts.ca } : {}),
      signal: opts.signal,
      userAgent: USER_AGENT,
      onBody(chunk) {
        received += chunk.length;
        if (received > desc.size)
          throw new ProbeError("digest_mismatch", `${endpoint}: more than the ${desc.size} bytes the manifest gives for ${desc.digest}`);
        hash.update(chunk);
      },
    });
    opts.log(`${endpoint} -> ${res.status}`);
    const location = res.headers.location;
    if (isRedirect(res.status) && location !== undefined) {
      hop = redirectHop(location, { endpoint: first, origin: opts.registryOrigin, url: hop.url, hops });
      continue;
    }
    if (res.status !== 200) throw statusError(res.status, res.headers["retry-after"], res.errorBody.toString("utf8"), endpoint);
    if (received !== desc.size) {
      throw new ProbeError("digest_mismatch", `${endpoint}: got ${received} bytes, the manifest gives ${desc.size} for ${desc.digest}`);
    }
    const actual = `${desc.digest.slice(0, desc.digest.indexOf(":"))}:${hash.digest("hex")}`;
    if (actual !== desc.digest)
      throw new ProbeError("digest_mismatch", `${endpoint}: content has digest ${actual}, expected ${desc.digest}`);
    return received;
  }
}
