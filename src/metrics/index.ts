import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { shadowsJobToken } from "../credentials/resolve.js";
import type { CanaryJob, Credential, ProbeResult } from "../types.js";
import { VERSION } from "../version.js";
import { cachedRender } from "./render.js";

/** A credential's owner facts, as the credential checks found them. */
export interface OwnerFacts {
  runner: string;
  registry: string;
  username: string;
  state: string;
  /** Epoch seconds. */
  expiresAt?: number;
}

type Labels = Record<string, string>;
type AnyMetric = Gauge<string> | Counter<string> | Histogram<string>;

/**
 * The metrics of SPEC.md on an explicit Registry. Every series is recorded
 * under an owner key (a probe task, a runner's credentials, a registry) so
 * that when the owner disappears its series go with it.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly #owned = new Map<string, Map<string, { metric: AnyMetric; labels: Labels }>>();

  readonly loginSuccess = this.#gauge("ci_prober_login_success", "1 if the last docker login by this runner to this registry succeeded.", ["runner", "registry"]);
  readonly loginDuration = this.#histogram("ci_prober_login_duration_seconds", "Duration of login probes.", ["runner", "registry"], [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]);
  readonly pullSuccess = this.#gauge("ci_prober_pull_success", "1 if the last pull of this image by this runner succeeded.", ["runner", "image"]);
  readonly pullDuration = this.#histogram("ci_prober_pull_duration_seconds", "Duration of pull probes.", ["runner", "image"], [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]);
  readonly pullBytes = this.#gauge(
    "ci_prober_pull_bytes",
    "Bytes fetched by the last pull of this image by this runner; pull=\"full\" (every blob) or \"manifest\" (a HEAD of the manifest).",
    ["runner", "image", "pull"],
  );
  readonly canarySuccess = this.#gauge("ci_prober_canary_success", "1 if the last canary (local job or GitLab pipeline job) on this runner succeeded.", ["runner", "canary"]);
  readonly canaryDuration = this.#histogram("ci_prober_canary_duration_seconds", "Duration of canary runs.", ["runner", "canary"], [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800]);
  readonly canaryQueued = this.#gauge("ci_prober_canary_queued_seconds", "Seconds the last canary job waited for this runner.", ["runner", "canary"]);
  readonly failures = new Counter({
    name: "ci_prober_probe_failures_total",
    help: "Probe failures by reason.",
    labelNames: ["probe", "runner", "target", "reason"],
    registers: [this.registry],
  });
  readonly skipped = new Counter({
    name: "ci_prober_probe_skipped_total",
    help: "Periods in which a probe did not start because its previous run was still waiting for a slot or still running.",
    labelNames: ["probe", "runner", "target"],
    registers: [this.registry],
  });
  readonly lastRun = this.#gauge("ci_prober_probe_last_run_timestamp_seconds", "When this probe last finished, epoch seconds.", ["probe", "runner", "target"]);
  readonly credentialInfo = this.#gauge(
    "ci_prober_credential_info",
    "A credential a runner holds, where it is stored, and whether it is the one used (in_use) or shadowed; always 1.",
    ["runner", "registry", "source", "username", "kind", "in_use"],
  );
  readonly shadowsJobToken = this.#gauge(
    "ci_prober_credential_shadows_job_token",
    "A stored credential that wins over the job token for the GitLab instance's registry or dependency proxy; always 1.",
    ["runner", "registry", "source"],
  );
  readonly ownerState = this.#gauge("ci_prober_credential_owner_state", "State of the credential's owner in GitLab; always 1.", ["runner", "registry", "username", "state"]);
  readonly credentialExpiry = this.#gauge("ci_prober_credential_expiry_timestamp_seconds", "When the credential's token expires, epoch seconds.", ["runner", "registry"]);
  readonly certExpiry = this.#gauge("ci_prober_tls_cert_expiry_timestamp_seconds", "When the registry's TLS certificate expires, epoch seconds.", ["registry"]);
  readonly rateLimitRemaining = this.#gauge("ci_prober_registry_rate_limit_remaining", "The registry's ratelimit-remaining header, last seen.", ["registry"]);
  readonly rateLimitLimit = this.#gauge("ci_prober_registry_rate_limit_limit", "The registry's ratelimit-limit header, last seen.", ["registry"]);
  readonly gitlabRequests = new Counter({
    name: "ci_prober_gitlab_requests_total",
    help: "GitLab API requests by route template and HTTP status (\"error\": no answer).",
    labelNames: ["endpoint", "code"],
    registers: [this.registry],
  });
  readonly buildInfo = this.#gauge("ci_prober_build_info", "Build information; always 1.", ["version", "node_version"]);

  constructor() {
    this.buildInfo.set({ version: VERSION, node_version: process.version }, 1);
  }

  /** A period in which the task `owner` could not start (its series go when the task does). */
  recordSkip(owner: string, labels: { probe: string; runner: string; target: string }): void {
    this.skipped.inc(labels);
    this.#own(owner, this.skipped, labels);
  }

  /** Record one probe result. `owner` is the task key; for a GitLab canary each job's runner gets its own series. */
  recordResult(owner: string, result: ProbeResult): void {
    const { probe, runner, target } = result;
    const finished = (result.startedAt + result.durationSeconds * 1000) / 1000;
    this.#set(owner, this.lastRun, { probe, runner, target }, finished);
    // A GitLab canary (any canary but "local") is one pipeline for many runners: its series are per job runner.
    const pipeline = probe === "canary" && target !== "local";
    if (pipeline) {
      this.#recordJobs(owner, target, result);
      return;
    }
    if (!result.success && result.reason) {
      const labels = { probe, runner, target, reason: result.reason };
      this.failures.inc(labels);
      this.#own(owner, this.failures, labels);
    }
    const ok = result.success ? 1 : 0;
    // A result held by the auth-failure backoff sent nothing: it has no duration worth a histogram.
    const ran = result.backoff === undefined;
    switch (probe) {
      case "login":
        this.#set(owner, this.loginSuccess, { runner, registry: target }, ok);
        if (ran) this.#observe(owner, this.loginDuration, { runner, registry: target }, result.durationSeconds);
        break;
      case "pull":
        this.#set(owner, this.pullSuccess, { runner, image: target }, ok);
        if (ran) this.#observe(owner, this.pullDuration, { runner, image: target }, result.durationSeconds);
        if (result.bytes !== undefined) this.#setPullBytes(owner, runner, target, result.pull ?? "full", result.bytes);
        break;
      case "canary":
        this.#set(owner, this.canarySuccess, { runner, canary: target }, ok);
        if (ran) this.#observe(owner, this.canaryDuration, { runner, canary: target }, result.durationSeconds);
        if (result.queuedSeconds !== undefined) this.#set(owner, this.canaryQueued, { runner, canary: target }, result.queuedSeconds);
        break;
    }
  }

  /**
   * A GitLab canary pipeline: one series per runner that ran a job ("none" for
   * jobs no runner picked, and for a pipeline that could not be created).
   */
  #recordJobs(owner: string, canary: string, result: ProbeResult): void {
    const byRunner = new Map<string, CanaryJob[]>();
    for (const job of result.jobs ?? []) {
      const runner = job.runner ?? "none";
      byRunner.set(runner, [...(byRunner.get(runner) ?? []), job]);
    }
    if (byRunner.size === 0) byRunner.set("none", []);
    for (const [runner, jobs] of byRunner) {
      const ok = jobs.length > 0 && jobs.every((j) => j.status === "success");
      this.#set(owner, this.canarySuccess, { runner, canary }, ok ? 1 : 0);
      const duration = jobs.length > 0 ? Math.max(0, ...jobs.map((j) => j.durationSeconds ?? 0)) : result.durationSeconds;
      this.#observe(owner, this.canaryDuration, { runner, canary }, duration);
      this.#set(owner, this.canaryQueued, { runner, canary }, Math.max(0, ...jobs.map((j) => j.queuedSeconds ?? 0)));
      this.#set(owner, this.lastRun, { probe: "canary", runner, target: canary }, Date.now() / 1000);
      if (!ok) {
        const labels = { probe: "canary", runner, target: canary, reason: result.reason ?? "pipeline_failed" };
        this.failures.inc(labels);
        this.#own(owner, this.failures, labels);
      }
    }
  }

  /** One pull_bytes series per runner and image: the kind of the last pull is its `pull` label. */
  #setPullBytes(owner: string, runner: string, image: string, pull: "full" | "manifest", bytes: number): void {
    const other = pull === "full" ? "manifest" : "full";
    this.pullBytes.remove({ runner, image, pull: other });
    this.#owned.get(owner)?.delete(`ci_prober_pull_bytes${JSON.stringify({ runner, image, pull: other })}`);
    this.#set(owner, this.pullBytes, { runner, image, pull }, bytes);
  }

  /** A registry's `ratelimit-*` headers as last seen. */
  setRateLimit(registry: string, rateLimit: { limit?: number; remaining?: number }): void {
    const owner = `ratelimit|${registry}`;
    if (rateLimit.limit !== undefined) this.#set(owner, this.rateLimitLimit, { registry }, rateLimit.limit);
    if (rateLimit.remaining !== undefined) this.#set(owner, this.rateLimitRemaining, { registry }, rateLimit.remaining);
  }

  /** One GitLab API request: its route template ("GET /api/v4/users/:id") and status code, or "error". */
  countGitlabRequest(endpoint: string, code: string): void {
    this.gitlabRequests.inc({ endpoint, code });
  }

  /**
   * Replace the credential_info series of one runner (or GitLab holder). The
   * registry label is the path the key names, so a path key and its host each
   * have their own in_use="true" series.
   */
  setCredentials(runner: string, credentials: Credential[], jobTokenPaths: readonly string[] = []): void {
    const owner = `credentials|${runner}`;
    this.drop(owner);
    for (const c of credentials) {
      const registry = c.path ?? c.registry;
      const inUse = c.inUse ? "true" : "false";
      this.#set(owner, this.credentialInfo, { runner, registry, source: c.source, username: c.username, kind: c.kind, in_use: inUse }, 1);
      if (shadowsJobToken(c, jobTokenPaths)) this.#set(owner, this.shadowsJobToken, { runner, registry, source: c.source }, 1);
    }
  }

  /** Replace the owner facts of one runner's credential. */
  setOwnerFacts(facts: OwnerFacts): void {
    const owner = `owner|${facts.runner}|${facts.registry}`;
    this.drop(owner);
    this.#set(owner, this.ownerState, { runner: facts.runner, registry: facts.registry, username: facts.username, state: facts.state }, 1);
    if (facts.expiresAt !== undefined) this.#set(owner, this.credentialExpiry, { runner: facts.runner, registry: facts.registry }, facts.expiresAt);
  }

  setCertExpiry(registry: string, notAfterSeconds: number | undefined): void {
    const owner = `tls|${registry}`;
    this.drop(owner);
    if (notAfterSeconds !== undefined) this.#set(owner, this.certExpiry, { registry }, notAfterSeconds);
  }

  /** Remove every series recorded under an owner key (a vanished task, runner or registry). */
  drop(owner: string): void {
    const series = this.#owned.get(owner);
    if (!series) return;
    for (const { metric, labels } of series.values()) metric.remove(labels);
    this.#owned.delete(owner);
  }

  /** Owner keys with a prefix, e.g. every "owner|runner|…" to drop those of a vanished runner. */
  owners(prefix: string): string[] {
    return [...this.#owned.keys()].filter((k) => k.startsWith(prefix));
  }

  readonly #render = cachedRender(this.registry);

  /** The exposition text; rendered again only when a series changed since the last call. */
  text(): Promise<string> {
    return this.#render.text();
  }

  #set(owner: string, metric: Gauge<string>, labels: Labels, value: number): void {
    metric.set(labels, value);
    this.#own(owner, metric, labels);
  }

  #observe(owner: string, metric: Histogram<string>, labels: Labels, value: number): void {
    metric.observe(labels, value);
    this.#own(owner, metric, labels);
  }

  #own(owner: string, metric: AnyMetric, labels: Labels): void {
    let series = this.#owned.get(owner);
    if (!series) {
      series = new Map();
      this.#owned.set(owner, series);
    }
    // Another owner may hold the same series (a runner listed twice); the last writer owns it.
    series.set(`${(metric as unknown as { name: string }).name}${JSON.stringify(labels)}`, { metric, labels });
  }

  #gauge(name: string, help: string, labelNames: string[]): Gauge<string> {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }

  #histogram(name: string, help: string, labelNames: string[], buckets: number[]): Histogram<string> {
    return new Histogram({ name, help, labelNames, buckets, registers: [this.registry] });
  }
}
