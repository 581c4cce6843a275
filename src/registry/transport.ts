/*
 * HTTP for the registry client's small requests (ping, tokens, manifests,
 * error bodies), over node:http / node:https rather than undici: importing
 * undici costs ~0.1 s and 21 MB RSS in every `ci-prober once` that pulls, and
 * node:http is already in the process. Blobs take their own path (rawget.ts),
 * which says why, with the measurements.
 */
import { type Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import { type Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { HttpStatusError, ProbeError } from "../reasons.js";
import { isRedirect, redirectHop } from "../redirect.js";
import { trustFor } from "./pool.js";
import { errorBodySchema } from "./schema.js";

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: IncomingMessage;
  /** The URL that answered (after redirects). */
  url: URL;
  /** The probe's signal the request was sent with. */
  signal: AbortSignal;
}

export interface SendInit {
  method?: "GET" | "POST" | "HEAD";
  headers?: Record<string, string>;
  /** Sent only to the origin of the first URL; dropped when a redirect leaves it. */
  authorization?: string;
  body?: string;
  signal: AbortSignal;
  /** Follow 301/302/303/307/308 (GET/HEAD only). */
  followRedirects?: boolean;
}

/** How long a probe's unread small body may take to drain after the probe ended. */
const DRAIN_MS = 5000;
/** Registries and proxies log it; operators can tell the prober's traffic from CI's. */
export const USER_AGENT = "ci-prober";

/**
 * One probe's handle on the shared keep-alive agents of its registry's trust
 * (pool.ts): connections outlive the probe and serve the next one; what the
 * probe must not leave behind is an answer it never read, which would hold
 * its socket busy. close() destroys every body still unread.
 */
export class Agents {
  readonly #agents: { http: HttpAgent; https: HttpsAgent };
  readonly #open = new Set<IncomingMessage>();

  constructor(ca: string | undefined) {
    this.#agents = trustFor(ca).agents;
  }

  for(url: URL): HttpAgent | HttpsAgent {
    return url.protocol === "http:" ? this.#agents.http : this.#agents.https;
  }

  /** Watch a body until it has been read or destroyed. */
  track(body: IncomingMessage): void {
    if (body.complete || body.destroyed) return;
    this.#open.add(body);
    body.once("close", () => this.#open.delete(body));
  }

  /**
   * A body being drained (discard(), resume()) is left to end, so its socket goes back to the pool
   * for the next probe, but for DRAIN_MS at most; any other is destroyed with its socket.
   */
  close(): void {
    for (const body of this.#open) {
      if (body.readableFlowing !== true || body.destroyed) {
        body.destroy();
        continue;
      }
      const timer = setTimeout(() => body.destroy(), DRAIN_MS).unref();
      body.once("close", () => clearTimeout(timer));
    }
    this.#open.clear();
  }
}

/** A request, following redirects; Authorization never crosses to another origin. */
export async function send(agents: Agents, url: URL, init: SendInit): Promise<HttpResponse> {
  const endpoint = endpointOf(init.method ?? "GET", url);
  let hop = { url, credentials: true };
  for (let hops = 0; ; hops++) {
    const headers = {
      "user-agent": USER_AGENT,
      ...init.headers,
      ...(init.authorization !== undefined && hop.credentials ? { authorization: init.authorization } : {}),
    };
    const res = await sendOnce(agents, hop.url, { ...init, headers });
    const location = res.headers.location;
    if (!init.followRedirects || !isRedirect(res.status) || location === undefined) return res;
    discard(res.body);
    hop = redirectHop(location, { endpoint, origin: url.origin, url: hop.url, hops });
  }
}

function sendOnce(agents: Agents, url: URL, init: SendInit & { headers: Record<string, string> }): Promise<HttpResponse> {
  init.signal.throwIfAborted();
  const method = init.method ?? "GET";
  const requestFn = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = requestFn(url, { method, headers: init.headers, agent: agents.for(url), signal: init.signal }, (res) => {
      agents.track(res);
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, url, signal: init.signal });
    });
    req.once("error", (err) => {
      // A kept-alive socket the far end closed while idle fails before any answer: send once more on a fresh one
      // (GET and HEAD only, as Go's and undici's clients do).
      if (req.reusedSocket && !init.signal.aborted && (method === "GET" || method === "HEAD") && isResetBeforeAnswer(err)) {
        sendOnce(agents, url, init).then(resolve, reject);
        return;
      }
      reject(requestFailed(endpointOf(method, url), err));
    });
    req.end(init.body);
  });
}

function isResetBeforeAnswer(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return code === "ECONNRESET" || code === "EPIPE";
}

/** Throw the body away without keeping the connection busy: drain a small one, destroy a large or unknown one. */
export function discard(body: IncomingMessage): void {
  if (body.destroyed) return;
  const length = Number(body.headers["content-length"] ?? Number.NaN);
  // A body that has all arrived may still sit unread in the stream: the socket goes back to the
  // agent's pool only at 'end', which needs it read. Left alone, 4 redirect hops took every socket.
  if (body.complete || (Number.isFinite(length) && length <= 64 * 1024)) {
    body.on("error", () => undefined);
    body.resume();
  } else {
    body.destroy();
  }
}

/**
 * Read a whole body of at most maxBytes. Larger (by Content-Length or by what
 * arrives), or cut short, is `bad_response`: the registry answered, but not
 * with a usable document.
 */
export async function readBody(res: HttpResponse, maxBytes: number, endpoint: string): Promise<Buffer> {
  const declared = Number(res.headers["content-length"] ?? Number.NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    res.body.destroy();
    throw new ProbeError("bad_response", `${endpoint}: response of ${declared} bytes is over the ${maxBytes}-byte limit`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > maxBytes) {
        res.body.destroy();
        throw new ProbeError("bad_response", `${endpoint}: response is over the ${maxBytes}-byte limit`);
      }
      chunks.push(chunk);
    }
  } catch (err) {
    throw truncated(err, res, endpoint, total);
  }
  if (!res.body.complete) throw new ProbeError("bad_response", `${endpoint}: response ended after ${total} bytes, before its end`);
  return Buffer.concat(chunks, total);
}

/** A body that stopped mid-way is a broken answer (bad_response), unless the probe's own deadline stopped it. */
export function truncated(err: unknown, res: HttpResponse, endpoint: string, received: number): unknown {
  if (err instanceof ProbeError) return err;
  // The deadline cut it: that is a timeout, whatever the socket said.
  if (res.signal.aborted) return requestFailed(endpoint, new Error(`stopped after ${received} bytes of the body`, { cause: err }));
  const code = (err as { code?: unknown } | undefined)?.code;
  if (code === "ECONNRESET" || code === "ERR_STREAM_PREMATURE_CLOSE" || (err instanceof Error && err.message === "aborted")) {
    if (!res.body.complete) {
      const declared = res.headers["content-length"];
      return new ProbeError("bad_response", `${endpoint}: response ended after ${received}${declared ? ` of ${declared}` : ""} bytes`, {
        cause: err,
      });
    }
  }
  return err;
}

/**
 * The error of a request that got no (whole) answer, naming the endpoint. The
 * original stays as `cause`, so classify() still finds its code.
 */
export function requestFailed(endpoint: string, err: unknown): Error {
  const message = err instanceof Error ? err.message : String(err);
  return new Error(`${endpoint}: ${message}`, { cause: err });
}

/** "GET http://host/v2/…" with any user:password@ and query removed: safe for errors and logs. */
export function endpointOf(method: string, url: URL): string {
  return `${method} ${url.origin}${url.pathname}`;
}

const ERROR_BODY_LIMIT = 64 * 1024;

/**
 * The HttpStatusError for an unwanted answer, with the registry's error code
 * and message (`{errors:[{code,message}]}`) or a token server's message when
 * the body has one. The body is always consumed.
 */
export async function httpError(res: HttpResponse, endpoint: string): Promise<HttpStatusError> {
  let text = "";
  try {
    text = (await readBody(res, ERROR_BODY_LIMIT, endpoint)).toString("utf8");
  } catch (err) {
    if (res.signal.aborted) throw err;
    // An unreadable error body still leaves the status to classify by.
  }
  return statusError(res.status, res.headers["retry-after"], text, endpoint);
}

/** The HttpStatusError for a status, its Retry-After and the text of its body. */
export function statusError(status: number, retryAfterHeader: string | undefined, text: string, endpoint: string): HttpStatusError {
  const retryAfter = Number(retryAfterHeader ?? Number.NaN);
  const detail = { ...errorDetail(text), ...(Number.isFinite(retryAfter) ? { retryAfterSeconds: retryAfter } : {}) };
  return new HttpStatusError(status, endpoint, detail);
}

function errorDetail(text: string): { code?: string; message?: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return {};
  }
  const parsed = errorBodySchema.safeParse(json);
  if (!parsed.success) return {};
  const body = parsed.data;
  if ("errors" in body) {
    const first = body.errors[0];
    return {
      ...(first?.code !== undefined ? { code: first.code } : {}),
      ...(first?.message !== undefined ? { message: first.message } : {}),
    };
  }
  if ("error" in body) return { code: body.error, message: body.error_description ?? body.error };
  return { message: body.message };
}
