import type { Credential, CredentialKind, SecretType } from "../types.js";
import type { Reason } from "../reasons.js";

/** One object of `ci-prober credentials --json` (SPEC.md): who, where, what kind — never the secret. */
export interface CredentialRow {
  runner: string;
  registry: string;
  username: string;
  kind: CredentialKind;
  secret_type: SecretType;
  source: string;
  error?: string;
  reason?: Reason;
}

/** The row for a credential; built field by field so that no secret can ride along. */
export function credentialRow(c: Credential): CredentialRow {
  return {
    runner: c.runner,
    registry: c.registry,
    username: c.username,
    kind: c.kind,
    secret_type: c.secretType,
    source: c.source,
    ...(c.error ? { error: c.error.message, reason: c.error.reason } : {}),
  };
}
