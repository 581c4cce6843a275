import type { Reason } from "./reasons.js";
import type { Secret } from "./secret.js";

export type Mode = "engine" | "direct";

/** One GitLab runner as the prober sees it (SPEC.md, Words). */
export interface Runner {
  name: string;
  mode: Mode;
  /** Where this runner was defined: `/etc/gitlab-runner/config.toml#runners[0]` or `ci-prober.yml#runners[1]`. */
  source: string;
  /** The runner user's Docker config.json, if one is known. It need not exist. */
  dockerConfig?: string;
  /** A DOCKER_AUTH_CONFIG value (a JSON Docker config in a string) with the place it was read from. */
  dockerAuthConfig?: { value: string; source: string };
  /** Engine address: unix:///var/run/docker.sock, tcp://host:2376. */
  dockerHost: string;
  /** gitlab-runner's [runners.docker] tls_cert_path: a directory holding ca.pem, cert.pem, key.pem. */
  tlsCertPath?: string;
  /** Images this runner's probes pull. */
  images: string[];
  executor?: string;
  pullPolicy?: string[];
  /** Engine-mode pull removes the image first so its layers are really fetched (RunnerSpec.fresh). */
  fresh?: boolean;
  /** Per-runner schedule overrides, milliseconds. */
  intervalMs?: number;
  timeoutMs?: number;
  /** Per-runner full_pull_interval, set only when written. */
  fullPullIntervalMs?: number;
}

export type SecretType = "password" | "identity_token" | "helper";
export type CredentialKind = "deploy_token" | "bot" | "job_token" | "service_account" | "personal" | "unknown";

/** One (registry, secret) pair a runner would use, with the exact place it was read from. */
export interface Credential {
  runner: string;
  /** Normalised registry host[:port] ("docker.io" for Docker Hub). */
  registry: string;
  username: string;
  secretType: SecretType;
  kind: CredentialKind;
  /** e.g. `/home/gitlab-runner/.docker/config.json#auths["registry.example.jp"]`. */
  source: string;
  /** Password, or identity token when secretType is identity_token (a helper's secret once it ran). */
  secret?: Secret;
  /** The docker-credential-NAME helper that holds it, when secretType is helper. */
  helper?: string;
  /** Set when the source could not be read or the helper failed; the credential is then unusable. */
  error?: { reason: Reason; message: string };
  /**
   * The registry path its key names, as GitLab Runner matches it: the host for a
   * host key (`registry.example.jp`), host and path for a path key
   * (`registry.example.jp/team-a`). Absent only for a source broken as a whole.
   */
  path?: string;
  /** True for the one credential the runner uses for `path` (SPEC.md, Which credential a runner uses). */
  inUse?: boolean;
  /** The source of the credential (or the empty key) that wins for `path` when this one does not, else null. */
  shadowedBy?: string | null;
  /** A GitLab CI/CD variable's environment_scope, for credentials GitLab holds. */
  environmentScope?: string;
}

export type ProbeKind = "login" | "pull" | "canary";

/** One job of a GitLab canary pipeline, as recorded by the canary probe. */
export interface CanaryJob {
  id: number;
  name: string;
  status: string;
  runner: string | null;
  queuedSeconds: number | null;
  durationSeconds: number | null;
  failureReason: string | null;
  /** First line of the trace that explains a failure. */
  errorLine?: string;
}

/** The outcome of one probe of one target for one runner. Never carries a secret. */
export interface ProbeResult {
  probe: ProbeKind;
  runner: string;
  /** Registry for login, image for pull, `local` or the GitLab project for canary. */
  target: string;
  success: boolean;
  reason?: Reason;
  /** One line, secrets scrubbed. */
  error?: string;
  durationSeconds: number;
  /** Epoch milliseconds when the probe started. */
  startedAt: number;
  /** The probe's own step-by-step log, secrets scrubbed. */
  log: string[];
  /** Pull: bytes fetched. */
  bytes?: number;
  /** Direct pull: a full pull (every blob) or a manifest check (HEAD). */
  pull?: "full" | "manifest";
  /** Set when the probe did not run because its secret is backing off after a refusal: the held failure. */
  backoff?: { nextAttemptAt: number; failures: number };
  /** Set when another runner's identical probe ran and this is its result, recorded on this runner's series. */
  sharedWith?: string;
  /** Canary: seconds the job waited for a runner. */
  queuedSeconds?: number;
  /** Canary: seconds per stage (pull, create, start, run). */
  stages?: Record<string, number>;
  /** GitLab canary: its jobs. */
  jobs?: CanaryJob[];
  /** The credential the probe used (login, pull, local canary): who and where, never the secret. */
  credential?: Pick<Credential, "registry" | "username" | "kind" | "source" | "secretType">;
}
