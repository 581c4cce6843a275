import type { StatusStore } from "../http/status.js";
import type { CredentialCheckView } from "../http/status-types.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics/index.js";
import type { CredentialCheck } from "../probes/credential-check.js";
import type { Sink } from "../probes/index.js";
import type { TaskKey } from "../task-key.js";
import type { Credential, CredentialKind } from "../types.js";

/** The kinds the Users API established, which override the kind a username's form suggests. */
export interface KindBook {
  learn(check: CredentialCheck): void;
  of(c: Pick<Credential, "runner" | "registry" | "username" | "kind">): CredentialKind;
}

/** The tasks of the running plan. */
export interface PlannedTasks {
  has(key: TaskKey): boolean;
}

/**
 * Record results in metrics and /status, each under the key of the task that
 * produced it, and log them with fixed messages. A result of a task the last
 * plan dropped (a run that was in flight when its runner went) is not
 * recorded: its series would stay for good, with no task left to drop them.
 */
export function daemonSink(metrics: Metrics, status: StatusStore, logger: Logger, kinds: KindBook, planned: PlannedTasks): Sink {
  return {
    probe(key, probed, series) {
      if (!planned.has(key)) return;
      const used = probed.credential;
      const r = used ? { ...probed, credential: { ...used, kind: kinds.of({ runner: probed.runner, ...used }) } } : probed;
      series(metrics, key, r);
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
      else if (r.backoff)
        logger.info({ ...fields, ...who, next_attempt_at: new Date(r.backoff.nextAttemptAt).toISOString() }, "probe backing off");
      else logger.warn({ ...fields, ...who }, "probe failed");
    },
    checks(key, checks) {
      if (!planned.has(key)) return;
      const checkedAt = new Date().toISOString();
      for (const c of checks) {
        metrics.setOwnerFacts(key, {
          runner: c.runner,
          registry: c.registry,
          username: c.username,
          state: c.state,
          ...(c.expiresAt !== undefined ? { expiresAt: c.expiresAt } : {}),
        });
        kinds.learn(c);
        logCheck(logger, c);
      }
      status.recordChecks(
        key,
        checks.map((c) => checkView(c, checkedAt)),
      );
    },
    cert(key, registry, notAfterMs) {
      if (!planned.has(key)) return;
      metrics.setCertExpiry(key, registry, notAfterMs !== undefined ? Math.floor(notAfterMs / 1000) : undefined);
    },
  };
}

function checkView(c: CredentialCheck, checkedAt: string): CredentialCheckView {
  return {
    runner: c.runner,
    registry: c.registry,
    username: c.username,
    kind: c.kind,
    state: c.state,
    expires_at: c.expiresAt !== undefined ? new Date(c.expiresAt * 1000).toISOString() : null,
    error: c.error?.message ?? null,
    reason: c.error?.reason ?? null,
    checked_at: checkedAt,
  };
}

function logCheck(logger: Logger, c: CredentialCheck): void {
  const fields = { runner: c.runner, registry: c.registry, username: c.username, kind: c.kind, state: c.state };
  if (c.error) logger.warn({ ...fields, reason: c.error.reason, error: c.error.message }, "credential check failed");
  else if (c.state !== "active") logger.warn(fields, "credential owner not active");
  else logger.debug(fields, "credential checked");
}
