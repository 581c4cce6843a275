import { Agent, request, type Dispatcher } from "undici";
import type { z } from "zod";
import { deadline, deadlineOf, sleep } from "../deadline.js";
import { silentLogger, type Logger } from "../log.js";
import { HttpStatusError, ProbeError } from "../reasons.js";
import type { Secret } from "../secret.js";
import { type GitlabBudget, lookupKey, routeTemplate } from "./budget.js";
import { jsonWithSchema } from "../json.js";
import { errorBodySchema } from "./schema.js";
import { zodIssueText } from "../zod-text.js";
import { isRedirect, redirectHop } from "../redirect.js";

export type HttpMethod = "GET" | "POST" | "PUT" | "DELETE";
type Query = Record<string, string | number | boolean | undefined>;

export interface GitlabClientOptions {
  /** Base URL of the instance: https://gitlab.example.jp (no /api/v4). */
  url: string;
  /** Sent as PRIVATE-TOKEN on every request unless a request names its own. */
  token?: Secret;
  /** PEM CA bundle to trust for this instance. */
  ca?: string;
  logger?: Logger;
  /** Deadline of one HTTP exchange, whatever the caller's signal allows. */
  requestTimeoutMs?: number;
  /** Retries of a 429 answer, and of a 5xx answer to an idempotent request. */
  maxRetries?: number;
  /** First backoff when the server gives no hint; doubles on each retry. */
  backoffMs?: number;
  /** The instance's request budget (budget.ts): slots, GitLab's own limits, the look-up cache and the request counter. */
  budget?: GitlabBudget;
}

interface CommonRequest {
  signal: AbortSignal;
  query?: Query;
  /** A body sent as JSON. */
  json?: unknown;
  /** Overrides the client's token for this request; null sends none. */
  token?: Secret | null;
  /** Epoch milliseconds after which no retry wait may end: the caller's own deadline. */
  deadline?: number;
  /** A look-up (owner, token): answered from the budget's cache within one gitlab.interval. */
  cache?: boolean;
  /** The 2xx answer's headers, for a caller that pages (`x-next-page`, `link`); not called for a cached answer. */
  onHeaders?(headers: Record<string, string | string[] | undefined>): void;
}

export interface JsonRequest<T> extends CommonRequest {
  schema: z.ZodType<T>;
  expect?: "json";
}

export interface TextRequest extends CommonRequest {
  expect: "text";
}

const MAX_BACKOFF_MS = 60_000;

/** A non-2xx answer, its body consumed into the error. */
interface Refused {
  res: Dispatcher.ResponseData;
  error: HttpStatusError;
}

/**
 * GitLab REST API v4 over undici. Every request runs under the caller's
 * AbortSignal and a per-request timeout; 429 waits for Retry-After /
 * RateLimit-Reset (or backs off exponentially) and 5xx on idempotent requests
 * is retried, a bounded number of times; any other non-2xx is an
 * HttpStatusError naming the request, so classify() gives its reason.
 */
/** A GitLab section of the config: where, with which token, trusting which CA. */
export interface GitlabTarget {
  url: string;
  token?: Secret;
  ca?: string;
}

/** The one way a configured GitLab (gitlab:, canary.gitlab:) becomes a client. */
export function gitlabClient(target: GitlabTarget, logger?: Logger, budget?: GitlabBudget): GitlabClient {
  return new GitlabClient({
    url: target.url,
    ...(target.token ? { token: target.token } : {}),
    ...(target.ca !== undefined ? { ca: target.ca } : {}),
    ...(logger ? { logger } : {}),
    ...(budget ? { budget } : {}),
  });
}

export class GitlabClient {
  readonly baseUrl: string;
  readonly #token: Secret | undefined;
  readonly #logger: Logger;
  readonly #dispatcher: Dispatcher | undefined;
  readonly #requestTimeoutMs: number;
  readonly #maxRetries: number;
  readonly #backoffMs: number;
  readonly #budget: GitlabBudget | undefined;

  constructor(opts: GitlabClientOptions) {
    this.#budget = opts.budget;
    this.baseUrl = opts.url.replace(/\/+$/, "");
    this.#token = opts.token;
    this.#logger = opts.logger ?? silentLogger;
    this.#dispatcher = opts.ca !== undefined ? new Agent({ connect: { ca: opts.ca } }) : undefined;
    this.#requestTimeoutMs = opts.requestTimeoutMs ?? 30_000;
    this.#maxRetries = opts.maxRetries ?? 4;
    this.#backoffMs = opts.backoffMs ?? 1000;
  }

  /** Release the connection pool of a client built with its own CA. */
  async close(): Promise<void> {
    await this.#dispatcher?.close();
  }

  request<T>(method: HttpMethod, path: string, opts: JsonRequest<T>): Promise<T>;
  request(method: HttpMethod, path: string, opts: TextRequest): Promise<string>;
  async request<T>(method: HttpMethod, path: string, opts: JsonRequest<T> | TextRequest): Promise<T | string> {
    const endpoint = `${method} /api/v4${path}`;
    const text = await this.#cachedExchange(method, path, endpoint, opts);
    if (opts.expect === "text") return text;
    return parseJson(endpoint, text, opts.schema);
  }

  /** A look-up answered from the budget's cache, or sent and remembered (a 2xx, or a 400/401/403/404 refusal). */
  async #cachedExchange(method: HttpMethod, path: string, endpoint: string, opts: CommonRequest): Promise<string> {
    const budget = this.#budget;
    if (budget === undefined || opts.cache !== true) return this.#exchange(method, path, endpoint, opts);
    const key = lookupKey(method, this.#url(path, opts.query), opts.token === undefined ? this.#token : opts.token);
    const hit = budget.cached(key);
    if (hit !== undefined) {
      if ("error" in hit) throw hit.error;
      return hit.text;
    }
    try {
      const text = await this.#exchange(method, path, endpoint, opts);
      budget.remember(key, { text });
      return text;
    } catch (err) {
      if (err instanceof HttpStatusError && [400, 401, 403, 404].includes(err.status)) budget.remember(key, { error: err });
      throw err;
    }
  }

  /** One request with its retries; the body text of the 2xx answer. */
  async #exchange(method: HttpMethod, path: string, endpoint: string, opts: CommonRequest): Promise<string> {
    // A POST that reached a 5xx may have taken effect (a second pipeline); only a 429, which GitLab refuses before acting, is safe to repeat.
    const idempotent = method === "GET" || method === "PUT" || method === "DELETE";
    const end = Math.min(opts.deadline ?? Number.POSITIVE_INFINITY, deadlineOf(opts.signal));
    for (let attempt = 0; ; attempt++) {
      const answer = await this.#attempt(method, path, endpoint, opts);
      if (typeof answer === "string") return answer;
      const { res, error } = answer;
      const retryable = res.statusCode === 429 || (res.statusCode >= 500 && idempotent);
      if (!retryable || attempt >= this.#maxRetries) throw error;
      const waitMs = res.statusCode === 429 ? rateLimitWaitMs(res.headers, attempt, this.#backoffMs) : this.#backoffMs * 2 ** attempt;
      if (Date.now() + waitMs > end) throw error;
      this.#logger.warn({ endpoint, status: res.statusCode, waitMs, attempt: attempt + 1 }, "gitlab request retried");
      await sleep(waitMs, opts.signal);
    }
  }

  /** One exchange, body included, under the per-request deadline: the 2xx body text, or the status error. */
  async #attempt(method: HttpMethod, path: string, endpoint: string, opts: CommonRequest): Promise<string | Refused> {
    const route = routeTemplate(method, `/api/v4${path}`);
    await this.#budget?.take(route, opts.signal);
    const limit = deadline(this.#requestTimeoutMs, opts.signal);
    let status: number | undefined;
    let headers: Dispatcher.ResponseData["headers"] = {};
    try {
      const res = await this.#follow(method, this.#url(path, opts.query), { ...opts, signal: limit.signal });
      ({ statusCode: status, headers } = res);
      if (res.statusCode < 300) {
        opts.onHeaders?.(res.headers);
        return await readBounded(res.body, endpoint, (opts as Partial<TextRequest>).expect === "text");
      }
      return { res, error: await statusError(res, endpoint) };
    } finally {
      limit.dispose();
      this.#budget?.observe(route, status, headers);
    }
  }

  #url(path: string, query: Query | undefined): URL {
    const url = new URL(`${this.baseUrl}/api/v4${path}`);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    return url;
  }

  /**
   * Send, following one redirect of a GET (a job trace may be served from
   * object storage). The token goes only to GitLab's own origin: undici's
   * redirect interceptor would forward PRIVATE-TOKEN anywhere.
   */
  async #follow(method: HttpMethod, url: URL, opts: CommonRequest): Promise<Dispatcher.ResponseData> {
    const res = await this.#send(method, url, opts, true);
    const location = header(res.headers, "location");
    if (method !== "GET" || !isRedirect(res.statusCode) || location === undefined) return res;
    await res.body.dump();
    const next = redirectHop(location, { endpoint: `GET ${url.pathname}`, origin: url.origin, url, hops: 0 });
    return this.#send("GET", next.url, opts, next.credentials);
  }

  async #send(method: HttpMethod, url: URL, opts: CommonRequest, withToken: boolean): Promise<Dispatcher.ResponseData> {
    const headers: Record<string, string> = { accept: "application/json" };
    const token = opts.token === undefined ? this.#token : opts.token;
    if (token && withToken) headers["private-token"] = token.reveal();
    if (opts.json !== undefined) headers["content-type"] = "application/json";
    const t0 = performance.now();
    const res = await request(url, {
      method,
      headers,
      ...(opts.json !== undefined ? { body: JSON.stringify(opts.json) } : {}),
      signal: opts.signal,
      ...(this.#dispatcher ? { dispatcher: this.#dispatcher } : {}),
    });
    this.#logger.debug({ method, path: url.pathname, status: res.statusCode, ms: Math.round(performance.now() - t0) }, "gitlab request");
    return res;
  }
}

function parseJson<T>(endpoint: string, text: string, schema: z.ZodType<T>): T {
  return jsonWithSchema(text, schema, {
    notJson: `${endpoint}: response is not JSON`,
    badShape: (issue) => `${endpoint}: unexpected response at ${zodIssueText(issue, "(top level): invalid")}`,
  });
}

/** The HttpStatusError for a non-2xx answer, with GitLab's own message when its body has one. Consumes the body. */
async function statusError(res: Dispatcher.ResponseData, endpoint: string): Promise<HttpStatusError> {
  const text = await res.body.text().catch(() => "");
  const retryAfter = retryAfterSeconds(res.headers);
  const message = errorMessage(text);
  return new HttpStatusError(res.statusCode, endpoint, {
    ...(retryAfter !== undefined ? { retryAfterSeconds: retryAfter } : {}),
    ...(message !== undefined ? { message } : {}),
  });
}

function errorMessage(text: string): string | undefined {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    // 429s from Rack::Attack are plain text ("Retry later").
    const line = text.trim().split("\n")[0];
    return line ? line.slice(0, 200) : undefined;
  }
  const body = errorBodySchema.safeParse(data);
  if (!body.success) return undefined;
  const { message, error, error_description } = body.data;
  if (typeof message === "string") return message.slice(0, 200);
  if (message !== undefined) return JSON.stringify(message).slice(0, 200);
  return (error_description ?? error)?.slice(0, 200);
}

function header(headers: Dispatcher.ResponseData["headers"], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Retry-After as seconds (it may also be an HTTP date). */
export function retryAfterSeconds(headers: Dispatcher.ResponseData["headers"], now = Date.now()): number | undefined {
  const value = header(headers, "retry-after");
  if (value === undefined || value.trim() === "") return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}

/**
 * How long to wait before repeating a 429: Retry-After, else GitLab's
 * RateLimit-Reset (epoch seconds; a small number is read as a delta, as the
 * IETF draft writes it), else exponential backoff from backoffMs.
 */
export function rateLimitWaitMs(headers: Dispatcher.ResponseData["headers"], attempt: number, backoffMs: number, now = Date.now()): number {
  const retryAfter = retryAfterSeconds(headers, now);
  // The server's word is honoured in full; the caller's deadline decides whether waiting is worth it.
  if (retryAfter !== undefined) return retryAfter * 1000;
  const reset = header(headers, "ratelimit-reset");
  if (reset !== undefined && /^\d+$/.test(reset.trim())) {
    const n = Number(reset.trim());
    const ms = n > 1_000_000_000 ? n * 1000 - now : n * 1000;
    return Math.max(ms, 0);
  }
  return Math.min(backoffMs * 2 ** attempt, MAX_BACKOFF_MS);
}

/** The most of one answer read: a canary's API answers and traces are small; a runaway trace must not fill memory. */
export const MAX_BODY_BYTES = 8 * 1024 * 1024;

/**
 * The body as text, at most MAX_BODY_BYTES. A longer text (a job trace) is
 * cut there and the rest cancelled; a longer JSON answer is bad_response.
 */
async function readBounded(body: Dispatcher.ResponseData["body"], endpoint: string, truncate: boolean): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      body.destroy();
      if (!truncate) throw new ProbeError("bad_response", `${endpoint}: answer larger than ${MAX_BODY_BYTES} bytes`);
      chunks.push(chunk.subarray(0, chunk.length - (size - MAX_BODY_BYTES)));
      break;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}
