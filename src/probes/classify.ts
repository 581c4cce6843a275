import { HttpStatusError, ProbeError, type Reason } from "../reasons.js";

/**
 * The one place that maps a failure to a reason of SPEC.md: errors that
 * already know their reason, aborts, Node/undici error codes, HTTP statuses,
 * registry error codes, and the Docker daemon's error texts.
 */
export function classify(err: unknown, signal?: AbortSignal): Reason {
  if (err instanceof ProbeError) return err.reason;
  if (signal?.aborted) return "timeout";
  if (err instanceof HttpStatusError) return fromHttp(err.status, err.code);
  const code = errorCode(err);
  if (code !== undefined) {
    const byCode = fromCode(code);
    if (byCode) return byCode;
  }
  const name = (err as { name?: unknown } | undefined)?.name;
  if (name === "AbortError" || name === "TimeoutError") return "timeout";
  const text = err instanceof Error ? err.message : typeof err === "string" ? err : "";
  const status = (err as { statusCode?: unknown } | undefined)?.statusCode;
  const byText = fromDaemonText(text);
  if (byText) return byText;
  if (typeof status === "number") return fromHttp(status, undefined);
  return "unknown";
}

/** HTTP status, refined by a registry error code (`DENIED`, `MANIFEST_UNKNOWN`, …) when there is one. */
export function fromHttp(status: number, registryCode: string | undefined): Reason {
  switch (registryCode) {
    case "UNAUTHORIZED":
      return "unauthorized";
    case "DENIED":
      return "forbidden";
    case "NAME_UNKNOWN":
    case "MANIFEST_UNKNOWN":
    case "BLOB_UNKNOWN":
      return "not_found";
    case "TOOMANYREQUESTS":
      return "rate_limited";
    case "DIGEST_INVALID":
      return "digest_mismatch";
  }
  if (status === 401) return "unauthorized";
  if (status === 403) return "forbidden";
  if (status === 404) return "not_found";
  if (status === 429) return "rate_limited";
  if (status === 408 || status === 504) return "timeout";
  if (status >= 500) return "server_error";
  return "bad_response";
}

function fromCode(code: string): Reason | undefined {
  switch (code) {
    case "UND_ERR_CONNECT_TIMEOUT":
    case "UND_ERR_HEADERS_TIMEOUT":
    case "UND_ERR_BODY_TIMEOUT":
    case "ETIMEDOUT":
    case "ABORT_ERR":
      return "timeout";
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "EAI_FAIL":
    case "EAI_NODATA":
      return "dns";
    case "ECONNREFUSED":
    case "ECONNRESET":
    case "EPIPE":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
    case "EADDRNOTAVAIL":
    case "UND_ERR_SOCKET":
    case "UND_ERR_CLOSED":
    case "UND_ERR_DESTROYED":
    case "ERR_STREAM_PREMATURE_CLOSE":
      return "connection";
    case "UND_ERR_RESPONSE_EXCEEDED_MAX_SIZE":
    case "UND_ERR_INVALID_ARG":
    case "HPE_INVALID_CONSTANT":
    case "HPE_INVALID_HEADER_TOKEN":
      return "bad_response";
  }
  if (code.startsWith("CERT_") || code.startsWith("ERR_TLS_") || code.startsWith("ERR_SSL_")) return "tls";
  // node:http's parser (llhttp): the peer answered, but not with valid HTTP.
  if (code.startsWith("HPE_")) return "bad_response";
  if (
    code === "UNABLE_TO_VERIFY_LEAF_SIGNATURE" ||
    code === "DEPTH_ZERO_SELF_SIGNED_CERT" ||
    code === "SELF_SIGNED_CERT_IN_CHAIN" ||
    code === "UNABLE_TO_GET_ISSUER_CERT_LOCALLY" ||
    code === "ERR_OSSL_PEM_NO_START_LINE" ||
    code === "HOSTNAME_MISMATCH"
  ) {
    return "tls";
  }
  return undefined;
}

/** The first error code found on the error or its causes (undici wraps socket errors in `cause`). */
function errorCode(err: unknown): string | undefined {
  let cur: unknown = err;
  for (let depth = 0; depth < 5 && cur !== null && typeof cur === "object"; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === "string") {
      const reason = fromCode(code);
      if (reason) return code;
    }
    const errors = (cur as { errors?: unknown }).errors;
    if (Array.isArray(errors) && errors.length > 0) {
      const inner = errorCode(errors[0]);
      if (inner) return inner;
    }
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * The Docker daemon's error texts (from /auth, /images/create and its progress
 * stream, container runs). Order matters: the first match wins.
 */
export function fromDaemonText(text: string): Reason | undefined {
  if (text === "") return undefined;
  const t = text.toLowerCase();
  // ENGINE-TEXT-RULES: engine mode adds its daemon texts here.
  // "pull access denied for X, repository does not exist or may require 'docker login': <cause>" wraps
  // a registry's DENIED, MANIFEST_UNKNOWN or NAME_UNKNOWN: the cause decides; with none it is access.
  const pullDenied = /pull access denied for [^\s]+, repository does not exist or may require 'docker login'(?:: (.*))?/s.exec(text);
  if (pullDenied) return fromDaemonText(pullDenied[1] ?? "") ?? "forbidden";
  // The daemon spoke HTTPS to a registry that answered plain HTTP: a transport security mismatch fixed in
  // TLS settings (insecure-registries, or TLS on the registry), not a network outage, so `tls`.
  if (t.includes("server gave http response to https client")) return "tls";
  // The other way round: plain HTTP to a tcp:// engine that wants TLS (a runner without tls_cert_path).
  if (t.includes("client sent an http request to an https server")) return "tls";
  if (t.includes("cannot connect to the docker daemon") || t.includes("is the docker daemon running")) return "engine_unavailable";
  if (
    t.includes("i/o timeout") ||
    t.includes("context deadline exceeded") ||
    t.includes("tls handshake timeout") ||
    t.includes("client.timeout exceeded")
  ) {
    return "timeout";
  }
  if (t.includes("x509:") || t.includes("tls: ") || t.includes("certificate signed by unknown authority")) return "tls";
  if (t.includes("no such host") || t.includes("server misbehaving")) return "dns";
  if (
    t.includes("connection refused") ||
    t.includes("connection reset by peer") ||
    t.includes("no route to host") ||
    t.includes("network is unreachable")
  ) {
    return "connection";
  }
  if (t.includes("no space left on device")) return "server_error";
  // A blob the manifest names is gone from the registry (BLOB_UNKNOWN), reported inside the progress stream.
  if (t.includes("unknown blob") || t.includes("blob unknown")) return "not_found";
  if (t.includes("toomanyrequests") || t.includes("too many requests")) return "rate_limited";
  if (t.includes("unauthorized") || t.includes("no basic auth credentials") || t.includes("authentication required")) {
    return "unauthorized";
  }
  if (t.includes("denied")) return "forbidden";
  if (t.includes("manifest unknown") || (t.includes("manifest") && t.includes("not found")) || t.includes("name unknown")) {
    return "not_found";
  }
  return undefined;
}
