import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { shadowsJobToken } from "../credentials/resolve.js";
import { KeyMap, type TaskKey } from "../task-key.js";
import type { Credential, ProbeResult } from "../types.js";
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
type Series = { metric: AnyMetric; labels: Labels };

/**
 * The metrics of SPEC.md on an explicit Registry. Every series is recorded
 * under its owner — the TaskKey of the task that wrote it, or the runner for
 * credential_info — so that when the owner disappears its series go with it.
 * What a probe kind writes is its descriptor's business (src/probes/index.ts).
 */
export class Metrics {
  readonly registry = new Registry();
  readonly #byTask = new KeyMap<Map<string, Series>>();
  readonly #byRunner = new Map<string, Map<string, Series>>();
  readonly #byRegistry = new Map<string, Map<string, Series>>();

  readonly loginSuccess = this.#gauge("ci_prober_login_success", "1 if the last docker login by this runner to this registry succeeded.", [
    "runner",
    "registry",
  ]);
  readonly loginDuration = this.#histogram(
    "ci_prober_login_duration_seconds",
    "Duration of login probes.",
    ["runner", "registry"],
    [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  );
  readonly pullSuccess = this.#gauge("ci_prober_pull_success", "1 if the last pull of this image by this runner succeeded.", [
    "runner",
    "image",
  ]);
  readonly pullDuration = this.#histogram(
    "ci_prober_pull_duration_seconds",
    "Duration of pull probes.",
    ["runner", "image"],
    [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
  );
  readonly pullBytes = this.#gauge(
    "ci_prober_pull_bytes",
    'Bytes fetched by the last pull of this image by this runner; pull="full" (every blob) or "manifest" (a HEAD of the manifest).',
    ["runner", "image", "pull"],
  );
  readonly canarySuccess = this.#gauge(
    "ci_prober_canary_success",
    "1 if the last canary (local job or GitLab pipeline job) on this runner succeeded.",
    ["runner", "canary"],
  );
  readonly canaryDuration = this.#histogram(
    "ci_prober_canary_duration_seconds",
    "Duration of canary runs.",
    ["runner", "canary"],
    [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800],
  );
  readonly canaryQueued = this.#gauge("ci_prober_canary_queued_seconds", "Seconds the last canary job waited for this runner.", [
    "runner",
    "canary",
  ]);
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
  readonly lastRun = this.#gauge("ci_prober_probe_last_run_timestamp_seconds", "When this probe last finished, epoch seconds.", [
    "probe",
    "runner",
    "target",
  ]);
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
  readonly ownerState = this.#gauge("ci_prober_credential_owner_state", "State of the credential's owner in GitLab; always 1.", [
    "runner",
    "registry",
    "username",
    "state",
  ]);
  readonly credentialExpiry = this.#gauge(
    "ci_prober_credential_expiry_timestamp_seconds",
    "When the credential's token expires, epoch seconds.",
    ["runner", "registry"],
  );
  readonly certExpiry = this.#gauge(
    "ci_prober_tls_cert_expiry_timestamp_seconds",
    "When the registry's TLS certificate expires, epoch seconds.",
    ["registry"],
  );
  readonly rateLimitRemaining = this.#gauge(
    "ci_prober_registry_rate_limit_remaining",
    "The registry's ratelimit-remaining header, last seen.",
    ["registry"],
  );
  readonly rateLimitLimit = this.#gauge("ci_prober_registry_rate_limit_limit", "The registry's ratelimit-limit header, last seen.", [
    "registry",
  ]);
  readonly gitlabRequests = new Counter({
    name: "ci_prober_gitlab_requests_total",
    help: 'GitLab API requests by route template and HTTP status ("error": no answer).',
    labelNames: ["endpoint", "code"],
    registers: [this.registry],
  });
  readonly reloadSuccessful = this.#gauge(
    "ci_prober_config_last_reload_successful",
    "Whether the last configuration reload attempt was successful.",
    [],
  );
  readonly reloadSuccessTime = this.#gauge(
    "ci_prober_config_last_reload_success_timestamp_seconds",
    "Timestamp of the last successful configuration reload.",
    [],
  );
  readonly buildInfo = this.#gauge("ci_prober_build_info", "Build information; always 1.", ["version", "node_version"]);

  constructor() {
    this.buildInfo.set({ version: VERSION, node_version: process.version }, 1);
    // As Prometheus does: the config read at start is the first successful load.
    this.configLoaded(true);
  }

  /** The outcome of a config (re)load. */
  configLoaded(ok: boolean, at: number = Date.now()): void {
    this.reloadSuccessful.set(ok ? 1 : 0);
    if (ok) this.reloadSuccessTime.set(at / 1000);
  }

  /** The series every probe result writes: when it last finished and, on failure, its reason counted. */
  recordRun(owner: TaskKey, result: ProbeResult): void {
    const { probe, runner, target } = result;
    const finished = (result.startedAt + result.durationSeconds * 1000) / 1000;
    this.set(owner, this.lastRun, { probe, runner, target }, finished);
    if (!result.success && result.reason) this.countFailure(owner, { probe, runner, target, reason: result.reason });
  }

  countFailure(owner: TaskKey, labels: { probe: string; runner: string; target: string; reason: string }): void {
    this.failures.inc(labels);
    this.#own(this.#ofTask(owner), this.failures, labels);
  }

  /** A period in which the task `owner` could not start (its series go when the task does). */
  recordSkip(owner: TaskKey, labels: { probe: string; runner: string; target: string }): void {
    this.skipped.inc(labels);
    this.#own(this.#ofTask(owner), this.skipped, labels);
  }

  /** One pull_bytes series per runner and image: the kind of the last pull is its `pull` label. */
  setPullBytes(owner: TaskKey, runner: string, image: string, pull: "full" | "manifest", bytes: number): void {
    const other = { runner, image, pull: pull === "full" ? "manifest" : "full" };
    this.pullBytes.remove(other);
    this.#byTask.get(owner)?.delete(seriesId(this.pullBytes, other));
    this.set(owner, this.pullBytes, { runner, image, pull }, bytes);
  }

  /** A registry's `ratelimit-*` headers as last seen; they belong to the registry, which outlives any one task. */
  setRateLimit(registry: string, rateLimit: { limit?: number; remaining?: number }): void {
    let owned = this.#byRegistry.get(registry);
    if (!owned) {
      owned = new Map();
      this.#byRegistry.set(registry, owned);
    }
    const labels = { registry };
    for (const [metric, value] of [
      [this.rateLimitLimit, rateLimit.limit],
      [this.rateLimitRemaining, rateLimit.remaining],
    ] as const) {
      if (value === undefined) continue;
      metric.set(labels, value);
      this.#own(owned, metric, labels);
    }
  }

  /** Registries that own series (the rate-limit gauges). */
  registries(): string[] {
    return [...this.#byRegistry.keys()];
  }

  /** Remove the series of a registry no task talks to any more. */
  dropRegistry(registry: string): void {
    for (const { metric, labels } of this.#byRegistry.get(registry)?.values() ?? []) metric.remove(labels);
    this.#byRegistry.delete(registry);
  }

  /** One GitLab API request: its route template ("GET /api/v4/users/:id") and status code, or "error". */
  countGitlabRequest(endpoint: string, code: string): void {
    this.gitlabRequests.inc({ endpoint, code });
  }

  /**
   * Replace the credential_info series of one runner (or GitLab holder); they
   * belong to the runner, not to a task. The registry label is the path the
   * key names, so a path key and its host each have their own in_use="true" series.
   */
  setCredentials(runner: string, credentials: Credential[], jobTokenPaths: readonly string[] = []): void {
    this.dropRunner(runner);
    const owned = new Map<string, Series>();
    this.#byRunner.set(runner, owned);
    for (const c of credentials) {
      const registry = c.path ?? c.registry;
      const labels = { runner, registry, source: c.source, username: c.username, kind: c.kind, in_use: c.inUse ? "true" : "false" };
      this.credentialInfo.set(labels, 1);
      this.#own(owned, this.credentialInfo, labels);
      if (!shadowsJobToken(c, jobTokenPaths)) continue;
      const shadow = { runner, registry, source: c.source };
      this.shadowsJobToken.set(shadow, 1);
      this.#own(owned, this.shadowsJobToken, shadow);
    }
  }

  /** Replace the owner facts a credential check task found. */
  setOwnerFacts(owner: TaskKey, facts: OwnerFacts): void {
    this.drop(owner);
    this.set(owner, this.ownerState, { runner: facts.runner, registry: facts.registry, username: facts.username, state: facts.state }, 1);
    if (facts.expiresAt !== undefined)
      this.set(owner, this.credentialExpiry, { runner: facts.runner, registry: facts.registry }, facts.expiresAt);
  }

  setCertExpiry(owner: TaskKey, registry: string, notAfterSeconds: number | undefined): void {
    this.drop(owner);
    if (notAfterSeconds !== undefined) this.set(owner, this.certExpiry, { registry }, notAfterSeconds);
  }

  /** Remove every series a task wrote (a vanished task). */
  drop(owner: TaskKey): void {
    const series = this.#byTask.get(owner);
    if (!series) return;
    for (const { metric, labels } of series.values()) metric.remove(labels);
    this.#byTask.delete(owner);
  }

  /** Remove a vanished runner's own series (credential_info). */
  dropRunner(runner: string): void {
    const series = this.#byRunner.get(runner);
    if (!series) return;
    for (const { metric, labels } of series.values()) metric.remove(labels);
    this.#byRunner.delete(runner);
  }

  /** Tasks that own series, for tests and for the daemon's bookkeeping. */
  owners(): TaskKey[] {
    return this.#byTask.keys();
  }

  set(owner: TaskKey, metric: Gauge<string>, labels: Labels, value: number): void {
    metric.set(labels, value);
    this.#own(this.#ofTask(owner), metric, labels);
  }

  observe(owner: TaskKey, metric: Histogram<string>, labels: Labels, value: number): void {
    metric.observe(labels, value);
    this.#own(this.#ofTask(owner), metric, labels);
  }

  readonly #render = cachedRender(this.registry);

  /** The exposition text; rendered again only when a series changed since the last call. */
  text(): Promise<string> {
    return this.#render.text();
  }

  #ofTask(owner: TaskKey): Map<string, Series> {
    let series = this.#byTask.get(owner);
    if (!series) {
      series = new Map();
      this.#byTask.set(owner, series);
    }
    return series;
  }

  #own(series: Map<string, Series>, metric: AnyMetric, labels: Labels): void {
    // Another owner may hold the same series (a runner listed twice); the last writer owns it.
    series.set(seriesId(metric, labels), { metric, labels });
  }

  #gauge(name: string, help: string, labelNames: string[]): Gauge<string> {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }

  #histogram(name: string, help: string, labelNames: string[], buckets: number[]): Histogram<string> {
    return new Histogram({ name, help, labelNames, buckets, registers: [this.registry] });
  }
}

function seriesId(metric: AnyMetric, labels: Labels): string {
  return `${(metric as unknown as { name: string }).name}${JSON.stringify(labels)}`;
}
