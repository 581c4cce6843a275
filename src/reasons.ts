/** The closed set of failure reasons of SPEC.md; metric label values come only from here. */
export const REASONS = [
  "unauthorized",
  "forbidden",
  "not_found",
  "rate_limited",
  "timeout",
  "dns",
  "connection",
  "tls",
  "server_error",
  "bad_response",
  "digest_mismatch",
  "credential_missing",
  "credential_invalid",
  "helper_failed",
  "engine_unavailable",
  "container_failed",
  "pipeline_failed",
  "pipeline_timeout",
  "unknown",
] as const;

export type Reason = (typeof REASONS)[number];

/**
 * An error whose failure reason is already known. Clients throw it where they
 * know better than classify.ts (a digest that did not match, a 401 from a token
 * endpoint); classify.ts passes it through unchanged.
 */
export class ProbeError extends Error {
  readonly reason: Reason;

  constructor(reason: Reason, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ProbeError";
    this.reason = reason;
  }
}

/**
 * An HTTP answer that was not the one wanted. `endpoint` names the request
 * (method and URL without credentials); `code` is a registry error code
 * (`DENIED`, `MANIFEST_UNKNOWN`, …) or GitLab's message, when the body had one.
 */
export class HttpStatusError extends Error {
  readonly status: number;
  readonly endpoint: string;
  readonly code: string | undefined;
  readonly retryAfterSeconds: number | undefined;

  constructor(status: number, endpoint: string, detail?: { code?: string; message?: string; retryAfterSeconds?: number }) {
    const text = detail?.message ? `: ${detail.message}` : detail?.code ? `: ${detail.code}` : "";
    super(`${endpoint}: HTTP ${status}${text}`);
    this.name = "HttpStatusError";
    this.status = status;
    this.endpoint = endpoint;
    this.code = detail?.code;
    this.retryAfterSeconds = detail?.retryAfterSeconds;
  }
}
