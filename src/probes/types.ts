import type { Config } from "../config/resolve.js";
import type { Logger } from "../log.js";
import type { GitlabBudget } from "../gitlab/budget.js";
import type { RateLimit } from "../registry/client.js";
import { scrub } from "../secret.js";
import type { PullState } from "./pull-plan.js";
import type { CanaryJob, Credential, ProbeKind, ProbeResult, Runner } from "../types.js";

/** Everything one probe of one target for one runner gets. */
export interface ProbeContext {
  config: Config;
  runner: Runner;
  /** Registry host for login, image reference for pull, canary name for canary. */
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

/** What a probe body returns on success (beyond success itself). */
export interface ProbeOutcome {
  bytes?: number;
  pull?: "full" | "manifest";
  queuedSeconds?: number;
  stages?: Record<string, number>;
  jobs?: CanaryJob[];
  credential?: ProbeResult["credential"];
}

/** One shape for every probe kind: run once for one target, never throw. */
export type ProbeFn = (ctx: ProbeContext) => Promise<ProbeResult>;

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
