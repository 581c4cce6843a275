import type { Logger } from "../log.js";
import type { GitlabBudget } from "../gitlab/budget.js";
import type { RateLimit } from "../registry/client.js";
import { scrub } from "../secret.js";
import type { PullState } from "./pull-plan.js";
import type { CanaryJob, Credential, ProbeKind, ProbeResult, Runner } from "../types.js";

/**
 * Everything one run of one probe kind for one target gets. `settings` is that
 * kind's own part of the config (a registry's transport, the canary section…),
 * never the whole config.
 */
export interface ProbeContext<S = unknown> {
  settings: S;
  runner: Runner;
  /** Registry host for login, image reference for pull, `local` or the project for a canary. */
  target: string;
  /** Aborted at the probe's deadline (config timeout) or when the daemon stops. Every I/O call takes it. */
  signal: AbortSignal;
  /** The probe's own step-by-step log, shown in /status. */
  log: ProbeLog;
  logger: Logger;
  /** The credential this runner would use for an image or a registry path, resolved fresh (files are re-read each round). */
  credentialFor(target: string): Promise<Credential | undefined>;
  /** Direct pull: what earlier rounds of this probe saw (the daemon keeps it); absent means a first round. */
  pullState?: PullState;
  /** A registry's `ratelimit-*` headers, when it sends them. */
  onRateLimit?(registry: string, rateLimit: RateLimit): void;
  /** The registry or its token realm refused the credential itself: the auth-failure backoff counts it. */
  onCredentialRefused?(): void;
  /** The GitLab API budget of the instance a GitLab probe talks to. */
  gitlabBudget?: GitlabBudget;
}

/** The context a probe body runs in: the probe's context plus the recorder of its partial results. */
export interface ProbeBodyContext<S = unknown> extends ProbeContext<S> {
  record: ProbeRecorder;
}

/** What a result carries beyond success, reason and log. */
export type ProbePartial = Pick<ProbeResult, "bytes" | "pull" | "queuedSeconds" | "stages" | "jobs" | "credential">;

/**
 * Where a probe body writes what it learned as it goes (blackbox hands each
 * probe a registry): a failed pull still names the credential it used, a
 * failed canary its stages and jobs. The body itself returns nothing or throws.
 */
export class ProbeRecorder {
  readonly partial: ProbePartial = {};

  /** The credential used; only who and where, never the secret. */
  credential(c: Credential): void {
    this.partial.credential = credentialInfo(c);
  }

  bytes(n: number): void {
    this.partial.bytes = n;
  }

  /** Which pull a direct pull made: every blob, or a HEAD of the manifest. */
  pull(kind: "full" | "manifest"): void {
    this.partial.pull = kind;
  }

  stage(name: string, seconds: number): void {
    this.partial.stages = { ...this.partial.stages, [name]: seconds };
  }

  jobs(jobs: CanaryJob[]): void {
    this.partial.jobs = jobs;
    const queued = jobs.map((j) => j.queuedSeconds).filter((q): q is number => q !== null);
    if (queued.length > 0) this.partial.queuedSeconds = Math.max(...queued);
  }
}

/** What a result may say about a credential: never its secret. */
export function credentialInfo(credential: Credential): NonNullable<ProbeResult["credential"]> {
  const { username, kind, source, secretType } = credential;
  // The path its key names: a path key and its host are two credentials.
  return { registry: credential.path ?? credential.registry, username, kind, source, secretType };
}

/** One shape for every probe that yields a ProbeResult: run once for one target, never throw. */
export type ProbeFn<S> = (ctx: ProbeContext<S>) => Promise<ProbeResult>;

/** Step-by-step log of one probe run: "+12ms GET http://127.0.0.1:5000/v2/ -> 401". */
export class ProbeLog {
  readonly lines: string[] = [];
  readonly #start = performance.now();

  step(message: string): void {
    const elapsed = Math.round(performance.now() - this.#start);
    this.lines.push(`+${elapsed}ms ${scrub(message)}`);
  }
}

export type { ProbeKind };
