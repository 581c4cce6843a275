import type { Reason } from "../reasons.js";

/** Where prometheus/alerts.yml's runbook_url points (prometheus/README.md says how to change it); the page links the same sections. */
export const RUNBOOK_BASE = "https://github.com/ci-prober/ci-prober/blob/main/docs/runbooks.md";

/** The runbook section (an alert of prometheus/alerts.yml, in lower case as GitHub makes anchors) for each thing the page shows. */
export const RUNBOOK_ANCHORS = {
  login: "ciregistryloginfailing",
  pull: "ciimagepullfailing",
  canary: "cicanaryfailing",
  certificate: "ciregistrycertificateexpiringsoon",
  owner_inactive: "ciregistrycredentialownerinactive",
  personal: "cirunnerusespersonalcredential",
  expiring: "ciregistrycredentialexpiringsoon",
  shadows_job_token: "cirunnercredentialshadowsjobtoken",
} as const;

export type RunbookTopic = keyof typeof RUNBOOK_ANCHORS;

export function runbookUrl(topic: RunbookTopic): string {
  return `${RUNBOOK_BASE}#${RUNBOOK_ANCHORS[topic]}`;
}

/** Each failure reason of SPEC.md in words: what it means for the runner's jobs, for the person reading the page. */
export const REASON_WORDS: Record<Reason, string> = {
  unauthorized: "The registry refused the credential (401): the password or token is wrong, revoked or expired, or its owner is blocked.",
  forbidden: "The credential logged in but may not read this repository (403).",
  not_found: "The image, tag or repository does not exist (404): cleaned up, renamed, or never pushed.",
  rate_limited: "The registry is rate-limiting this host (429): jobs' pulls are refused too.",
  timeout: "No answer within the probe's timeout: the registry, GitLab or the engine is slow or hanging.",
  dns: "The registry's host name does not resolve from this host.",
  connection: "No connection: refused, reset or unreachable.",
  tls: "TLS failed: the certificate is not trusted, has expired, or names another host.",
  server_error: "The registry or GitLab answered with a server error (5xx).",
  bad_response: "The answer was not what the protocol expects (not JSON, wrong shape, too large).",
  digest_mismatch: "A downloaded blob does not match its digest: a broken proxy or storage.",
  credential_missing: "The runner holds no credential for this registry.",
  credential_invalid: "The stored credential does not decode: fix the file named in the source.",
  helper_failed: "The credential helper failed, hung or answered garbage; the runner drops that whole source.",
  engine_unavailable: "The Docker engine the runner uses is unreachable.",
  container_failed: "The canary container did not exit 0.",
  pipeline_failed: "The canary pipeline failed.",
  pipeline_timeout: "The canary pipeline did not finish in time (no runner picked it up, or it hung).",
  unknown: "An error ci-prober could not classify: read the error and the log below.",
};
