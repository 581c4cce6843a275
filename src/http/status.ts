import type { CredentialRow } from "../credentials/format.js";
import { cachedImagePolicy } from "../credentials/pull-policy.js";
import type { HeldVariableView } from "../gitlab/held.js";
import { KeyMap, keyText, type KeySet, type TaskKey } from "../task-key.js";
import type { CredentialCheckView } from "./status-types.js";
import type { ProbeResult, Runner } from "../types.js";

export type { CredentialCheckView };

/** A credential as /status shows it: the `credentials --json` row (where it is, whose, in use or shadowed), never its secret. */
export type CredentialView = CredentialRow;

export interface RunnerView {
  name: string;
  mode: string;
  source: string;
  docker_host: string;
  docker_config: string | null;
  images: string[];
  /** `[runners.docker] pull_policy`, null when unset (GitLab Runner then uses `always`). */
  pull_policy: string[] | null;
  /** Set when the pull policy lets a job start from a cached image without any credential: a broken credential stays hidden. */
  latent_failures: string | null;
  credentials: CredentialView[];
}

const HISTORY = 10;

/** What /status and / show: runners, credentials, the last results with their logs, and a short history. */
export class StatusStore {
  readonly startedAt = Date.now();
  configFile = "";
  runners: RunnerView[] = [];
  /** Bad inputs found while planning (a config.toml that does not parse…), one line each. */
  inputErrors: string[] = [];
  /** The DOCKER_AUTH_CONFIG variables GitLab holds (gitlab.variables): holder, scope, the projects whose jobs get each. */
  gitlabVariables: HeldVariableView[] = [];
  readonly #results = new KeyMap<ProbeResult[]>();
  /** Outlives the ten-result history: a probe failing for a day still knows since when, and its last success. */
  readonly #streaks = new KeyMap<Streak>();
  readonly #checks = new KeyMap<CredentialCheckView[]>();

  setRunners(runners: Runner[], credentials: Map<string, CredentialView[]>): void {
    this.runners = runners.map((r) => ({
      name: r.name,
      mode: r.mode,
      source: r.source,
      docker_host: r.dockerHost,
      docker_config: r.dockerConfig ?? null,
      images: r.images,
      pull_policy: r.pullPolicy ?? null,
      latent_failures: cachedImagePolicy(r) ?? null,
      credentials: credentials.get(r.name) ?? [],
    }));
  }

  record(key: TaskKey, result: ProbeResult): void {
    const history = this.#results.get(key) ?? [];
    // Only the latest result keeps its step-by-step log: the history shows outcomes and times, and
    // ten logs for each of 2,000 probes held ~30 MB of a 1,000-runner daemon.
    const previous = history[0];
    if (previous !== undefined && previous.log.length > 0) history[0] = { ...previous, log: [] };
    history.unshift(result);
    history.length = Math.min(history.length, HISTORY);
    this.#results.set(key, history);
    const streak = this.#streaks.get(key) ?? { failingSince: null, lastSuccess: null };
    if (result.success) this.#streaks.set(key, { failingSince: null, lastSuccess: result.startedAt });
    else this.#streaks.set(key, { ...streak, failingSince: streak.failingSince ?? result.startedAt });
  }

  /** The checks of one credential check task's last run: they replace the run before. */
  recordChecks(key: TaskKey, checks: CredentialCheckView[]): void {
    this.#checks.set(key, checks);
  }

  /** Forget tasks that no longer exist; what a task that still exists recorded stays. */
  retain(keys: KeySet): void {
    for (const key of this.#results.keys()) if (!keys.has(key)) this.#results.delete(key);
    for (const key of this.#streaks.keys()) if (!keys.has(key)) this.#streaks.delete(key);
    for (const key of this.#checks.keys()) if (!keys.has(key)) this.#checks.delete(key);
  }

  latest(): ProbeResult[] {
    return this.#results.values().flatMap((h) => (h[0] ? [h[0]] : []));
  }

  toJSON(): unknown {
    return {
      config_file: this.configFile,
      started_at: new Date(this.startedAt).toISOString(),
      input_errors: this.inputErrors,
      runners: this.runners,
      probes: this.#results.entries().map(([key, history]) => ({
        key: keyText(key),
        failing_since: iso(this.#streaks.get(key)?.failingSince ?? null),
        last_success: iso(this.#streaks.get(key)?.lastSuccess ?? null),
        last: history[0] ? view(history[0]) : null,
        history: history.map((r) => ({
          success: r.success,
          reason: r.reason ?? null,
          at: new Date(r.startedAt).toISOString(),
          duration_seconds: round(r.durationSeconds),
        })),
      })),
      credential_checks: this.#checks.values().flat(),
      gitlab_variables: this.gitlabVariables,
    };
  }
}

function view(r: ProbeResult): Record<string, unknown> {
  return {
    probe: r.probe,
    runner: r.runner,
    target: r.target,
    success: r.success,
    reason: r.reason ?? null,
    error: r.error ?? null,
    started_at: new Date(r.startedAt).toISOString(),
    duration_seconds: round(r.durationSeconds),
    ...(r.bytes !== undefined ? { bytes: r.bytes } : {}),
    ...(r.pull !== undefined ? { pull: r.pull } : {}),
    ...(r.backoff !== undefined
      ? { backoff: { next_attempt_at: new Date(r.backoff.nextAttemptAt).toISOString(), failures: r.backoff.failures } }
      : {}),
    ...(r.sharedWith !== undefined ? { shared_with: r.sharedWith } : {}),
    ...(r.queuedSeconds !== undefined ? { queued_seconds: r.queuedSeconds } : {}),
    ...(r.stages ? { stages: r.stages } : {}),
    ...(r.jobs ? { jobs: r.jobs } : {}),
    ...(r.credential
      ? {
          credential: {
            registry: r.credential.registry,
            username: r.credential.username,
            kind: r.credential.kind,
            secret_type: r.credential.secretType,
            source: r.credential.source,
          },
        }
      : {}),
    log: r.log,
  };
}

/** Epoch milliseconds of the first failure of the current run of failures (null while passing), and of the last success. */
interface Streak {
  failingSince: number | null;
  lastSuccess: number | null;
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}
