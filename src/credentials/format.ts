import type { Credential, CredentialKind, SecretType } from "../types.js";
import type { Reason } from "../reasons.js";
import { shadowsJobToken } from "./resolve.js";

/** One object of `ci-prober credentials --json` (SPEC.md): who, where, what kind, in use or shadowed — never the secret. */
export interface CredentialRow {
  runner: string;
  /** The registry path the key names: a host, or host and path for a path key. */
  registry: string;
  username: string;
  kind: CredentialKind;
  secret_type: SecretType;
  source: string;
  in_use: boolean;
  shadowed_by: string | null;
  /** A GitLab CI/CD variable's environment scope (credentials GitLab holds). */
  environment_scope?: string;
  /** It wins where the job's own token would have been used (GitLab's registry or dependency proxy). */
  shadows_job_token?: true;
  error?: string;
  reason?: Reason;
}

/** The row for a credential; built field by field so that no secret can ride along. */
export function credentialRow(c: Credential, jobTokenPaths: readonly string[] = []): CredentialRow {
  return {
    runner: c.runner,
    registry: c.path ?? c.registry,
    username: c.username,
    kind: c.kind,
    secret_type: c.secretType,
    source: c.source,
    in_use: c.inUse ?? false,
    shadowed_by: c.shadowedBy ?? null,
    ...(c.environmentScope !== undefined ? { environment_scope: c.environmentScope } : {}),
    ...(shadowsJobToken(c, jobTokenPaths) ? { shadows_job_token: true as const } : {}),
    ...(c.error ? { error: c.error.message, reason: c.error.reason } : {}),
  };
}

/** What the table's SOURCE column says after the source: why a row is not the one used. */
export function rowNote(row: CredentialRow): string {
  if (row.shadowed_by !== null) return ` (shadowed by ${shortSource(row.shadowed_by)})`;
  if (row.shadows_job_token) return " (shadows the job token)";
  return "";
}

/** `…/config.json#auths["x"]` → `…config.json#auths["x"]`: the file's last name and the key, enough to find it in the table. */
function shortSource(source: string): string {
  const hash = source.indexOf("#");
  const file = hash === -1 ? source : source.slice(0, hash);
  const slash = file.lastIndexOf("/");
  return slash <= 0 || file.startsWith("gitlab:") ? source : `…${source.slice(slash + 1)}`;
}
