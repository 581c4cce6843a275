import { createHash } from "node:crypto";
import { jsonOf, withSchema } from "../json.js";
import { ProbeError } from "../reasons.js";
import { type ZodIssueLike, zodIssueText } from "../zod-text.js";
import { type Descriptor, type ImageIndex, type ImageManifest, imageManifestSchema, indexSchema } from "./schema.js";

export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
export const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";

/** The Accept header of a manifest request: the four types we can read, as Docker sends them. */
export const MANIFEST_ACCEPT = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].join(", ");

/** A manifest over this is not one we will read (the distribution spec's own limit). */
export const MANIFEST_LIMIT = 4 * 1024 * 1024;

export type ParsedManifest =
  | { kind: "index"; mediaType: string; index: ImageIndex }
  | { kind: "image"; mediaType: string; manifest: ImageManifest };

/**
 * Parse a manifest body by its media type: the Content-Type, else the body's
 * own mediaType, else its shape (an OCI index may omit both).
 */
export function parseManifest(body: Buffer, contentType: string | undefined, endpoint: string): ParsedManifest {
  const json = jsonOf(body.toString("utf8"), `${endpoint}: manifest is not JSON (${body.length} bytes)`);
  const declared = (json as { mediaType?: unknown } | null)?.mediaType;
  const header = contentType?.split(";")[0]?.trim().toLowerCase();
  const fromHeader =
    header !== undefined && header !== "" && header !== "application/json" && header !== "application/octet-stream" ? header : undefined;
  const mediaType = fromHeader ?? (typeof declared === "string" ? declared : undefined);
  const isIndex =
    mediaType === OCI_INDEX ||
    mediaType === DOCKER_LIST ||
    (mediaType === undefined && Array.isArray((json as { manifests?: unknown }).manifests));
  if (isIndex) {
    const index = withSchema(json, indexSchema, (issue) => badManifest(endpoint, mediaType ?? OCI_INDEX, issue));
    return { kind: "index", mediaType: mediaType ?? OCI_INDEX, index };
  }
  if (mediaType !== undefined && mediaType !== OCI_MANIFEST && mediaType !== DOCKER_MANIFEST) {
    throw new ProbeError("bad_response", `${endpoint}: unsupported manifest media type ${mediaType}`);
  }
  const manifest = withSchema(json, imageManifestSchema, (issue) => badManifest(endpoint, mediaType ?? OCI_MANIFEST, issue));
  return { kind: "image", mediaType: mediaType ?? OCI_MANIFEST, manifest };
}

function badManifest(endpoint: string, mediaType: string, issue: ZodIssueLike | undefined): string {
  const where = issue ? ` at ${zodIssueText(issue, "")}` : "";
  return `${endpoint}: invalid ${mediaType}${where}`;
}

export interface Platform {
  os: string;
  architecture: string;
  // As an index's manifest entry parses it: a variant may be absent or explicitly undefined.
  variant?: string | undefined;
}

/** "linux/arm64/v8" → {os, architecture, variant}. */
export function parsePlatform(text: string): Platform {
  const [os = "", architecture = "", variant] = text.split("/");
  return { os, architecture, ...(variant !== undefined ? { variant } : {}) };
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter((x) => x !== undefined && x !== "").join("/");
}

/**
 * The index entry for a platform: os and architecture equal, and the variant
 * too when one is asked for. No entry is `not_found`, as Docker's
 * "no matching manifest for linux/amd64 in the manifest list entries".
 */
export function selectPlatform(index: ImageIndex, wanted: Platform, endpoint: string): Descriptor {
  const match = index.manifests.find(
    (m) =>
      m.platform !== undefined &&
      m.platform.os === wanted.os &&
      m.platform.architecture === wanted.architecture &&
      (wanted.variant === undefined || m.platform.variant === wanted.variant),
  );
  if (match) return match;
  const have = index.manifests.map((m) => (m.platform ? formatPlatform(m.platform) : "unknown")).join(", ");
  throw new ProbeError("not_found", `${endpoint}: no manifest for ${formatPlatform(wanted)} in the index (has: ${have || "none"})`);
}

const ALGORITHMS: Record<string, string> = { sha256: "sha256", sha512: "sha512" };

/** The node:crypto hash name for a digest's algorithm; another algorithm is `bad_response`. */
export function digestAlgorithm(digest: string): string {
  const alg = digest.slice(0, digest.indexOf(":"));
  const name = ALGORITHMS[alg];
  if (name === undefined) throw new ProbeError("bad_response", `unsupported digest algorithm in ${digest}`);
  return name;
}

/** The digest of bytes in the algorithm of `like` (sha256 when absent). */
export function digestOf(body: Buffer, like?: string): string {
  const alg = like !== undefined ? digestAlgorithm(like) : "sha256";
  return `${alg}:${createHash(alg).update(body).digest("hex")}`;
}
