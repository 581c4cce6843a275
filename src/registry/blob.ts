import { createHash } from "node:crypto";
import { ProbeError } from "../reasons.js";
import { digestAlgorithm } from "./manifest.js";
import type { Descriptor } from "./schema.js";
import { type HttpResponse, truncated } from "./transport.js";

/**
 * Stream a blob body through its digest's hash, never to disk, and compare
 * with the descriptor: more bytes than its size, fewer, or another digest is
 * `digest_mismatch`; a body cut off mid-way is `bad_response`. Returns the
 * bytes read.
 */
export async function verifyBlob(res: HttpResponse, desc: Descriptor, endpoint: string): Promise<number> {
  const hash = createHash(digestAlgorithm(desc.digest));
  let received = 0;
  try {
    // One listener per chunk, no promise per chunk: this is the hot path of a pull.
    await new Promise<void>((resolve, reject) => {
      const body = res.body;
      body.on("data", (chunk: Buffer) => {
        received += chunk.length;
        if (received > desc.size) {
          body.destroy(new ProbeError("digest_mismatch", `${endpoint}: more than the ${desc.size} bytes the manifest gives for ${desc.digest}`));
          return;
        }
        hash.update(chunk);
      });
      body.once("end", resolve);
      body.once("error", reject);
      body.once("close", () => {
        if (!body.complete) reject(Object.assign(new Error("aborted"), { code: "ECONNRESET" }));
      });
    });
  } catch (err) {
    throw truncated(err, res, endpoint, received);
  }
  if (received !== desc.size) {
    throw new ProbeError("digest_mismatch", `${endpoint}: got ${received} bytes, the manifest gives ${desc.size} for ${desc.digest}`);
  }
  const actual = `${desc.digest.slice(0, desc.digest.indexOf(":"))}:${hash.digest("hex")}`;
  if (actual !== desc.digest) throw new ProbeError("digest_mismatch", `${endpoint}: content has digest ${actual}, expected ${desc.digest}`);
  return received;
}
