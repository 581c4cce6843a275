import type { RegistryTransport } from "../config/resolve.js";
import { DOCKER_HUB, DOCKER_HUB_API_HOST, isLoopbackRegistry, type ImageRef, manifestReference } from "../image.js";
import { HttpStatusError, ProbeError } from "../reasons.js";
import { Secret } from "../secret.js";
import type { Credential } from "../types.js";
import { fetchBlob } from "./blob.js";
import { type Challenge, parseChallenges, pickChallenge } from "./challenge.js";
import {
  digestOf,
  formatPlatform,
  MANIFEST_ACCEPT,
  MANIFEST_LIMIT,
  parseManifest,
  type ParsedManifest,
  type Platform,
  selectPlatform,
} from "./manifest.js";
import type { Descriptor, ImageManifest } from "./schema.js";
import { basicAuthorization, fetchToken, type TokenCredential } from "./token.js";
import { Agents, endpointOf, type HttpResponse, httpError, readBody, send } from "./transport.js";

export interface RegistryClientOptions {
  /** Credential key of the registry: host[:port], "docker.io" for Docker Hub. */
  registry: string;
  /** The credential the runner would use; undefined when it holds none. */
  credential: Credential | undefined;
  /** `registries[host]` of the config. */
  transport: RegistryTransport | undefined;
  signal: AbortSignal;
  /** One step of the probe's own log; never given a header value. */
  log(message: string): void;
  /** Overrides the scheme chosen by registryScheme() (tests speak TLS on 127.0.0.1). */
  scheme?: "http" | "https";
  /** Called with the `ratelimit-*` headers of any answer that carries them (Docker Hub's pull quota). */
  onRateLimit?(rateLimit: RateLimit): void;
  /** Called when the registry or its token realm refuses the credential itself (not a missing scope or tag). */
  onCredentialRefused?(): void;
}

/** A registry's `ratelimit-limit` / `ratelimit-remaining` (`100;w=21600`): the counts, without the window. */
export interface RateLimit {
  limit?: number;
  remaining?: number;
}

/** What a HEAD of a manifest tells: the reference exists, with this digest (when the registry says). */
export interface ManifestHead {
  digest: string | undefined;
  mediaType: string | undefined;
}

export interface PullResult {
  /** Bytes of config and layers fetched. */
  bytes: number;
  /** Digest of the image manifest pulled (the platform's entry when the reference named an index). */
  digest: string;
  /** Digest of what the reference names (the index itself for a multi-platform tag): what a HEAD reports. */
  topDigest: string;
  mediaType: string;
}

/** Plain HTTP for a registry marked insecure and for 127.0.0.0/8 and ::1, as dockerd does; HTTPS otherwise. */
export function registryScheme(registry: string, transport: Pick<RegistryTransport, "insecure" | "ca"> | undefined): "http" | "https" {
  if (transport?.insecure === true) return "http";
  // A CA configured for a registry says it speaks TLS, on loopback too (where Docker also tries HTTPS first).
  if (transport?.ca !== undefined) return "https";
  return isLoopbackRegistry(registry) ? "http" : "https";
}

/** Where a registry's API answers: Docker Hub's key "docker.io" is served at registry-1.docker.io. */
export function registryOrigin(registry: string, scheme: "http" | "https"): URL {
  const host = registry === DOCKER_HUB ? DOCKER_HUB_API_HOST : registry;
  return new URL(`${scheme}://${host}`);
}

/**
 * A Docker registry (distribution API v2) spoken to as `docker login` and
 * `docker pull` do: ping /v2/, answer its challenge (Basic, or a Bearer token
 * from the realm), then manifests and blobs. One client per probe; close() it.
 */
export class RegistryClient {
  readonly #opts: RegistryClientOptions;
  readonly #origin: URL;
  readonly #agents: Agents;
  #authorization: Secret | undefined;
  #basic = false;

  constructor(opts: RegistryClientOptions) {
    this.#opts = opts;
    this.#origin = registryOrigin(opts.registry, opts.scheme ?? registryScheme(opts.registry, opts.transport));
    this.#agents = new Agents(opts.transport?.ca);
  }

  close(): void {
    this.#agents.close();
  }

  /** What `docker login` does: a token without scope (or Basic), then an authenticated GET /v2/ that must answer 200. */
  async login(): Promise<void> {
    // A credential that failed to load fails the probe even where the registry would not ask for it, as it fails `docker login`.
    usableCredential(this.#opts.credential, this.#opts.registry);
    const challenge = await this.#ping();
    if (challenge === undefined) {
      this.#opts.log("registry requires no authentication");
      return;
    }
    await this.#authenticate(challenge, undefined, true);
    const res = await this.#get("/v2/", {});
    if (res.status !== 200) throw this.#refusal(await httpError(res, endpointOf("GET", res.url)), challenge.scheme === "basic");
    res.body.resume();
  }

  /** Resolve the manifest (an index to the platform's entry), then fetch and verify config and every layer. */
  async pull(ref: ImageRef, platform: Platform): Promise<PullResult> {
    usableCredential(this.#opts.credential, this.#opts.registry);
    const challenge = await this.#ping();
    if (challenge !== undefined) await this.#authenticate(challenge, `repository:${ref.repository}:pull`, false);
    const reference = manifestReference(ref);
    let { parsed, digest } = await this.#manifest(ref.repository, reference, ref.digest);
    const topDigest = digest;
    if (parsed.kind === "index") {
      const entry = selectPlatform(parsed.index, platform, endpointOf("GET", this.#url(`/v2/${ref.repository}/manifests/${reference}`)));
      this.#opts.log(`platform ${formatPlatform(platform)} -> ${entry.digest}`);
      ({ parsed, digest } = await this.#manifest(ref.repository, entry.digest, entry.digest));
      if (parsed.kind === "index") throw new ProbeError("bad_response", `manifest ${entry.digest} for the platform is itself an index`);
    }
    const bytes = await this.#blobs(ref.repository, parsed.manifest);
    return { bytes, digest, topDigest, mediaType: parsed.mediaType };
  }

  /**
   * What a pull checks without fetching anything: a token with pull scope and
   * a HEAD of the manifest (the tag exists, its digest). A HEAD costs no
   * Docker Hub pull quota, and no layer bytes anywhere.
   */
  async manifestHead(ref: ImageRef): Promise<ManifestHead> {
    usableCredential(this.#opts.credential, this.#opts.registry);
    const challenge = await this.#ping();
    if (challenge !== undefined) await this.#authenticate(challenge, `repository:${ref.repository}:pull`, false);
    const res = await this.#get(`/v2/${ref.repository}/manifests/${manifestReference(ref)}`, { accept: MANIFEST_ACCEPT }, true, "HEAD");
    const endpoint = endpointOf("HEAD", res.url);
    if (res.status !== 200) throw await this.#failure(res, endpoint);
    res.body.resume();
    const announced = res.headers["docker-content-digest"];
    const digest = typeof announced === "string" && announced !== "" ? announced : undefined;
    if (ref.digest !== undefined && digest !== undefined && digest !== ref.digest) {
      throw new ProbeError("digest_mismatch", `${endpoint}: Docker-Content-Digest says ${digest}, expected ${ref.digest}`);
    }
    const mediaType = res.headers["content-type"]?.split(";")[0]?.trim();
    this.#opts.log(`manifest ${mediaType ?? "-"} ${digest ?? "(no digest)"} (HEAD)`);
    return { digest: digest ?? ref.digest, mediaType };
  }

  /** GET /v2/ without credentials: undefined when it answers 200, else the challenge of its 401. */
  async #ping(): Promise<Challenge | undefined> {
    const res = await this.#get("/v2/", {}, false);
    if (res.status === 200) {
      res.body.resume();
      return undefined;
    }
    if (res.status !== 401) throw await httpError(res, endpointOf("GET", res.url));
    res.body.resume();
    const header = res.headers["www-authenticate"];
    if (header === undefined)
      throw new ProbeError("bad_response", `${endpointOf("GET", res.url)}: 401 without a WWW-Authenticate challenge`);
    const challenge = pickChallenge(parsedChallenges(header, endpointOf("GET", res.url)));
    if (challenge === undefined)
      throw new ProbeError("bad_response", `${endpointOf("GET", res.url)}: no Basic or Bearer challenge in WWW-Authenticate`);
    const { realm, service, scope } = challenge.params;
    this.#opts.log(`challenge ${challenge.scheme} realm=${realm ?? "-"} service=${service ?? "-"} scope=${scope ?? "-"}`);
    return challenge;
  }

  /** Set the Authorization for the requests that follow: Basic from the credential, or a Bearer token from the realm. */
  async #authenticate(challenge: Challenge, scope: string | undefined, requireCredential: boolean): Promise<void> {
    const credential = usableCredential(this.#opts.credential, this.#opts.registry);
    if (credential === undefined && (requireCredential || challenge.scheme === "basic")) {
      throw new ProbeError(
        "credential_missing",
        `no credential for ${this.#opts.registry}, and it demands one (${challenge.scheme} challenge)`,
      );
    }
    if (challenge.scheme === "basic" && credential !== undefined) {
      this.#authorization = secretHeader(basicAuthorization(credential.username, credential.secret));
      this.#basic = true;
      return;
    }
    const realm = challenge.params.realm;
    if (realm === undefined) throw new ProbeError("bad_response", `Bearer challenge of ${this.#opts.registry} has no realm`);
    const { service } = challenge.params;
    const token = await fetchToken(this.#agents, {
      realm,
      ...(service !== undefined ? { service } : {}),
      ...(scope !== undefined ? { scope } : {}),
      ...(credential !== undefined ? { credential } : {}),
      signal: this.#opts.signal,
      log: this.#opts.log,
    }).catch((err: unknown) => {
      throw this.#orMissing(this.#refusal(err, credential !== undefined));
    });
    this.#authorization = secretHeader(`Bearer ${token.reveal()}`);
  }

  async #manifest(repository: string, reference: string, pinned: string | undefined): Promise<{ parsed: ParsedManifest; digest: string }> {
    const res = await this.#get(`/v2/${repository}/manifests/${reference}`, { accept: MANIFEST_ACCEPT });
    const endpoint = endpointOf("GET", res.url);
    if (res.status !== 200) throw await this.#failure(res, endpoint);
    const body = await readBody(res, MANIFEST_LIMIT, endpoint);
    const digest = digestOf(body, pinned);
    if (pinned !== undefined && digest !== pinned)
      throw new ProbeError("digest_mismatch", `${endpoint}: manifest has digest ${digest}, expected ${pinned}`);
    const announced = res.headers["docker-content-digest"];
    if (typeof announced === "string" && announced !== "" && digestOf(body, announced) !== announced) {
      throw new ProbeError(
        "digest_mismatch",
        `${endpoint}: manifest has digest ${digestOf(body, announced)}, Docker-Content-Digest says ${announced}`,
      );
    }
    const parsed = parseManifest(body, res.headers["content-type"], endpoint);
    this.#opts.log(`manifest ${parsed.mediaType} ${digest} (${body.length} bytes)`);
    return { parsed, digest };
  }

  async #blobs(repository: string, manifest: ImageManifest): Promise<number> {
    let bytes = 0;
    for (const desc of [manifest.config, ...manifest.layers]) bytes += await this.#blob(repository, desc);
    return bytes;
  }

  async #blob(repository: string, desc: Descriptor): Promise<number> {
    const bytes = await fetchBlob(this.#url(`/v2/${repository}/blobs/${desc.digest}`), desc, {
      registryOrigin: this.#origin.origin,
      authorization: this.#authorization?.reveal(),
      ca: this.#opts.transport?.ca,
      signal: this.#opts.signal,
      log: this.#opts.log,
    }).catch((err: unknown) => {
      throw this.#orMissing(err);
    });
    this.#opts.log(`blob ${desc.digest} ${bytes} bytes verified`);
    return bytes;
  }

  async #failure(res: HttpResponse, endpoint: string): Promise<unknown> {
    // With Basic auth every request carries the credential: a 401 is the registry refusing it.
    return this.#orMissing(this.#refusal(await httpError(res, endpoint), this.#basic));
  }

  /** A 401/403 to a request that carried the credential itself is a failed authentication: the backoff counts it. */
  #refusal(err: unknown, carriedCredential: boolean): unknown {
    if (carriedCredential && err instanceof HttpStatusError && (err.status === 401 || err.status === 403))
      this.#opts.onCredentialRefused?.();
    return err;
  }

  /** A 401 (from the registry or its token realm) to a probe that holds no credential means the registry demands one. */
  #orMissing(err: unknown): unknown {
    if (!(err instanceof HttpStatusError) || err.status !== 401) return err;
    if (usableCredential(this.#opts.credential, this.#opts.registry) !== undefined) return err;
    return new ProbeError("credential_missing", `no credential for ${this.#opts.registry}, and it demands one (${err.message})`, {
      cause: err,
    });
  }

  #url(path: string): URL {
    return new URL(path, this.#origin);
  }

  async #get(path: string, headers: Record<string, string>, authenticated = true, method: "GET" | "HEAD" = "GET"): Promise<HttpResponse> {
    const url = this.#url(path);
    const authorization = authenticated ? this.#authorization?.reveal() : undefined;
    const res = await send(this.#agents, url, {
      method,
      headers,
      signal: this.#opts.signal,
      followRedirects: true,
      ...(authorization !== undefined ? { authorization } : {}),
    });
    const moved = res.url.href !== url.href ? ` (redirected to ${endpointOf(method, res.url)})` : "";
    this.#opts.log(`${endpointOf(method, url)} -> ${res.status}${moved}`);
    this.#rateLimit(res);
    return res;
  }

  #rateLimit(res: HttpResponse): void {
    const limit = rateLimitCount(res.headers["ratelimit-limit"]);
    const remaining = rateLimitCount(res.headers["ratelimit-remaining"]);
    if (limit === undefined && remaining === undefined) return;
    this.#opts.log(`rate limit ${remaining ?? "-"} of ${limit ?? "-"} remaining`);
    this.#opts.onRateLimit?.({ ...(limit !== undefined ? { limit } : {}), ...(remaining !== undefined ? { remaining } : {}) });
  }
}

/** The count of a `ratelimit-*` header: `100;w=21600` → 100; undefined when absent or not a count. */
export function rateLimitCount(header: string | string[] | undefined): number | undefined {
  const text = Array.isArray(header) ? header[0] : header;
  const match = /^\s*(\d+)\s*(;|,|$)/.exec(text ?? "");
  return match?.[1] !== undefined ? Number(match[1]) : undefined;
}

/** The credential as a token request or Basic header uses it; a credential that failed to load throws its reason. */
function usableCredential(credential: Credential | undefined, registry: string): TokenCredential | undefined {
  if (credential === undefined) return undefined;
  if (credential.error !== undefined) {
    // A helper's or a file's message already starts with the source: say it once.
    const { message } = credential.error;
    const from = message.startsWith(credential.source) ? "" : ` from ${credential.source}`;
    throw new ProbeError(credential.error.reason, `credential for ${registry}${from}: ${message}`);
  }
  if (credential.secret === undefined) return undefined;
  // A credential helper answering Username "<token>" hands over an identity token (docker-credential-helpers).
  const identityToken = credential.secretType === "identity_token" || credential.username === "<token>";
  return { username: credential.username, secret: credential.secret, identityToken };
}

/** An Authorization value is as secret as what it carries. */
function secretHeader(value: string): Secret {
  return new Secret(value);
}

/** The challenges of a WWW-Authenticate header; one that does not parse is bad_response naming the endpoint. */
function parsedChallenges(header: string, endpoint: string): Challenge[] {
  try {
    return parseChallenges(header);
  } catch (err) {
    if (err instanceof ProbeError) throw new ProbeError(err.reason, `${endpoint}: ${err.message}`);
    throw err;
  }
}
