/**
 * Image references and registry host names, normalised the way the Docker
 * CLI does (distribution/reference's ParseNormalizedNamed and the CLI's
 * credential-key normalisation).
 */

export const DOCKER_HUB = "docker.io";
/** The key Docker writes in config.json for Docker Hub. */
export const DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/";
/** Where Docker Hub's registry API actually answers. */
export const DOCKER_HUB_API_HOST = "registry-1.docker.io";

export interface ImageRef {
  /** Registry host[:port] as a credential key, "docker.io" for Docker Hub. */
  registry: string;
  /** Repository path inside the registry, "library/busybox" for official Hub images. */
  repository: string;
  /** Tag, "latest" when none is given and no digest is. */
  tag?: string;
  /** "sha256:…" when the reference pins a digest. */
  digest?: string;
  /** The reference as written by the user. */
  raw: string;
}

const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

/** Parse an image reference; throws an Error with a one-line message when it is not one. */
export function parseImageRef(raw: string): ImageRef {
  let rest = raw.trim();
  if (rest === "") throw new Error(`invalid image reference "${raw}": empty`);
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw new Error(`invalid image reference "${raw}": bad digest "${digest}"`);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw new Error(`invalid image reference "${raw}": bad tag "${tag}"`);
  }
  let registry = DOCKER_HUB;
  let repository = rest;
  const slash = rest.indexOf("/");
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    // Docker's rule: the first component is a host when it has a dot or a port, or is localhost.
    if (first.includes(".") || first.includes(":") || first === "localhost" || first !== first.toLowerCase()) {
      registry = normalizeRegistry(first);
      repository = rest.slice(slash + 1);
    }
  }
  if (registry === DOCKER_HUB && !repository.includes("/")) repository = `library/${repository}`;
  for (const part of repository.split("/")) {
    if (!PATH_COMPONENT.test(part)) throw new Error(`invalid image reference "${raw}": bad repository "${repository}"`);
  }
  if (tag === undefined && digest === undefined) tag = "latest";
  return { registry, repository, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}), raw };
}

/** The reference a manifest request uses: the digest when pinned, else the tag. */
export function manifestReference(ref: ImageRef): string {
  return ref.digest ?? ref.tag ?? "latest";
}

/** Canonical text of a reference, e.g. "registry.example.jp/ci/canary:latest". */
export function formatImageRef(ref: ImageRef): string {
  const name = ref.registry === DOCKER_HUB ? `docker.io/${ref.repository}` : `${ref.registry}/${ref.repository}`;
  return `${name}${ref.tag !== undefined ? `:${ref.tag}` : ""}${ref.digest !== undefined ? `@${ref.digest}` : ""}`;
}

/**
 * Normalise a config.json key or a server address the way the Docker CLI does
 * (registry.ConvertToHostname): scheme and path dropped, port kept, Docker Hub's
 * aliases folded to "docker.io".
 */
export function normalizeRegistry(key: string): string {
  let host = key.trim();
  host = host.replace(/^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//, "");
  const slash = host.indexOf("/");
  if (slash >= 0) host = host.slice(0, slash);
  host = host.toLowerCase();
  if (host === "index.docker.io" || host === "registry-1.docker.io" || host === "docker.io" || host === "registry.hub.docker.com") {
    return DOCKER_HUB;
  }
  return host;
}

/** True for hosts Docker talks to over plain HTTP by default: 127.0.0.0/8 and ::1 (and localhost). */
export function isLoopbackRegistry(registry: string): boolean {
  let host = registry;
  if (host.startsWith("[")) host = host.slice(1, host.indexOf("]"));
  else if (host.split(":").length === 2) host = host.slice(0, host.lastIndexOf(":"));
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
