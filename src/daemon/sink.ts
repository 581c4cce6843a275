import type { Logger } from "../log.js";
import type { Metrics } from "../metrics/index.js";
import type { Sink } from "../plan.js";
import type { CredentialCheck } from "../probes/credential-check.js";
import type { StatusStore } from "../http/status.js";
import type { Credential, CredentialKind } from "../types.js";

/** Record results in metrics and /status and log them with fixed messages. */
export function daemonSink(
  metrics: Metrics,
  status: StatusStore,
  logger: Logger,
  kinds: { learn(check: CredentialCheck): void; of(c: Pick<Credential, "runner" | "registry" | "username" | "kind">): CredentialKind },
): Sink {
  return {
    check(key, c) {
      metrics.setOwnerFacts({ runner: c.runner, registry: c.registry, username: c.username, state: c.state, ...(c.expiresAt !== undefined ? { expiresAt: c.expiresAt } : {}) });
      status.recordCheck(key, {
        runner: c.runner,
        registry: c.registry,
        username: c.username,
        kind: c.kind,
        state: c.state,
        expires_at: c.expiresAt !== undefined ? new Date(c.expiresAt * 1000).toISOString() : null,
        error: c.error?.message ?? null,
        reason: c.error?.reason ?? null,
        checked_at: new Date().toISOString(),
      });
      kinds.learn(c);
      const fields = { runner: c.runner, registry: c.registry, username: c.username, kind: c.kind, state: c.state };
      if (c.error) logger.warn({ ...fields, reason: c.error.reason, error: c.error.message }, "credential check failed");
      else if (c.state !== "active") logger.warn(fields, "credential owner not active");
      else logger.debug(fields, "credential checked");
    },
    cert(registry, notAfterMs) {
      metrics.setCertExpiry(registry, notAfterMs !== undefined ? Math.floor(notAfterMs / 1000) : undefined);
    },
    result(key, probed) {
      const used = probed.credential;
      const r = used ? { ...probed, credential: { ...used, kind: kinds.of({ runner: probed.runner, ...used }) } } : probed;
      metrics.recordResult(key, r);
      status.record(key, r);
      const fields = {
        probe: r.probe,
        runner: r.runner,
        target: r.target,
        duration_seconds: Math.round(r.durationSeconds * 1000) / 1000,
        ...(r.pull !== undefined ? { pull: r.pull, bytes: r.bytes } : {}),
        ...(r.sharedWith !== undefined ? { shared_with: r.sharedWith } : {}),
      };
      const who = { reason: r.reason, error: r.error, username: r.credential?.username, source: r.credential?.source };
      if (r.success) logger.info(fields, "probe succeeded");
      else if (r.backoff) logger.info({ ...fields, ...who, next_attempt_at: new Date(r.backoff.nextAttemptAt).toISOString() }, "probe backing off");
      else logger.warn({ ...fields, ...who }, "probe failed");
    },
  };
}
