/** A credential check as /status shows it. */
export interface CredentialCheckView {
  runner: string;
  registry: string;
  username: string;
  kind: string;
  state: string;
  expires_at: string | null;
  error: string | null;
  reason: string | null;
  checked_at: string;
}
