import { ProbeError } from "./reasons.js";

/**
 * The one way a redirect is followed (registry requests, token realms, blobs,
 * GitLab job traces): each caller sends its own requests (pools and sockets stay
 * theirs); this says where the next one goes and whether credentials go with it.
 */

/** Hops followed at the most; one more is `bad_response` (a loop ends long before the probe's deadline). */
export const MAX_REDIRECTS = 5;

/** The statuses that send a client elsewhere with a Location. */
export function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

export interface RedirectFrom {
  /** The first request as errors name it (`GET http://127.0.0.1:5000/v2/…`). */
  endpoint: string;
  /** The origin the credentials belong to: only a hop to it carries them. */
  origin: string;
  /** The URL that answered with the redirect; a relative Location is resolved against it. */
  url: URL;
  /** How many redirects were followed before this one. */
  hops: number;
}

export interface RedirectHop {
  url: URL;
  /** Whether Authorization / PRIVATE-TOKEN may go with it (same origin as the credentials' only). */
  credentials: boolean;
}

/**
 * The next hop for a Location, or `bad_response` naming the endpoint: too many hops,
 * a Location that is no URL, or one that is not http(s). The Location itself is never
 * echoed: a signed storage URL carries its own credential.
 */
export function redirectHop(location: string, from: RedirectFrom): RedirectHop {
  if (from.hops >= MAX_REDIRECTS) throw new ProbeError("bad_response", `${from.endpoint}: more than ${MAX_REDIRECTS} redirects`);
  let next: URL;
  try {
    next = new URL(location, from.url);
  } catch {
    throw new ProbeError("bad_response", `${from.endpoint}: redirect to an invalid URL`);
  }
  if (next.protocol !== "http:" && next.protocol !== "https:") {
    throw new ProbeError("bad_response", `${from.endpoint}: redirect to a ${next.protocol} URL`);
  }
  return { url: next, credentials: next.origin === from.origin };
}
