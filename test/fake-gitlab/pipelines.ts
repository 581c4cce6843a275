import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FakeUser, GitlabState } from "./state.js";

/**
 * CI of the fake GitLab: projects, runners, pipelines and jobs. Pipelines move
 * `created → pending → running → success/failed` on timers; a fake "runner"
 * with a tag picks up a pending job and behaves as the test configured it.
 * Jobs of one pipeline run in parallel (the canary has one stage).
 */

export type RunnerBehaviour =
  /** Run the job and succeed. */
  | { kind: "succeed"; pickupMs?: number; runMs?: number }
  /** Fail with this failure_reason and this trace (raw, as GitLab stores it). */
  | { kind: "fail"; failureReason: string; trace: string; pickupMs?: number; runMs?: number }
  /**
   * Really pull the job's image through a dockerd with a registry credential
   * (a temp DOCKER_CONFIG for the docker CLI), as the Docker executor does,
   * and fail with runner_system_failure and the daemon's own error text when the pull fails.
   */
  | { kind: "pull"; docker: string; dockerHost: string; image: string; username: string; password: string; pickupMs?: number };

export interface FakeRunner {
  id: number;
  description: string;
  name: string | null;
  tags: string[];
  isShared: boolean;
  paused: boolean;
  behaviour: RunnerBehaviour;
}

export interface JobSpec {
  name: string;
  stage?: string;
  tags: string[];
}

export type Role = "guest" | "reporter" | "developer" | "maintainer" | "owner";

export interface FakeProject {
  id: number;
  path: string;
  refs: Set<string>;
  jobs: JobSpec[];
  triggerTokens: Set<string>;
  /** Members and their role; a user who is not one sees 404, as on a private project. */
  members: Map<string, Role>;
}

export type JobStatus = "created" | "pending" | "running" | "success" | "failed" | "canceled";

export interface FakeJob {
  id: number;
  name: string;
  stage: string;
  tags: string[];
  status: JobStatus;
  createdAt: number;
  queuedAt: number | null;
  startedAt: number | null;
  finishedAt: number | null;
  failureReason: string | null;
  runner: FakeRunner | null;
  trace: string;
  pipelineId: number;
}

export interface FakePipeline {
  id: number;
  iid: number;
  projectId: number;
  sha: string;
  ref: string;
  status: JobStatus;
  source: "api" | "trigger" | "push" | "web" | "schedule";
  createdAt: number;
  updatedAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  user: FakeUser | null;
  variables: { key: string; value: string; variable_type: string }[];
  jobs: FakeJob[];
  /** Every status the pipeline went through, in order. */
  history: JobStatus[];
}

export interface ApiRequestRecord {
  at: number;
  method: string;
  path: string;
  status: number;
}

export interface RateLimitPlan {
  remaining: number;
  /** 429 by default (Rack::Attack); a 5xx to simulate a struggling instance. */
  status?: 429 | 500 | 502 | 503;
  /** Leave out RateLimit-Reset too, so a client has nothing to go by but its own backoff. */
  omitReset?: boolean;
  /** Sent as Retry-After; without it only RateLimit-Reset says when to come back. */
  retryAfterSeconds?: number;
  /** Seconds until RateLimit-Reset; defaults to retryAfterSeconds, else 1. */
  resetSeconds?: number;
}

const PENDING_AFTER_MS = 20;

export class CiState {
  readonly projects = new Map<number, FakeProject>();
  readonly runners: FakeRunner[] = [];
  readonly pipelines = new Map<number, FakePipeline>();
  readonly jobs = new Map<number, FakeJob>();
  /** Every /api/v4 request, for tests that assert what the client did. */
  readonly requests: ApiRequestRecord[] = [];
  /** Called as each /api/v4 request arrives, before it is answered: a test moves state on between two requests. */
  onApiRequest: ((method: string, url: URL) => void) | undefined;
  rateLimit: RateLimitPlan = { remaining: 0 };
  /** Rack::Attack's per-user counter shown in RateLimit-Observed, for the current one-minute period. */
  observed = 0;
  /** Start of Rack::Attack's current period; the counter starts again every minute, as GitLab's throttles do. */
  windowStart = Date.now();
  /** Requests a period allows (GitLab.com's authenticated API: 2000 a minute); a benchmark raises it to measure its own budget. */
  limitPerMinute = 2000;
  #next = { project: 1, runner: 1, pipeline: 100, job: 1000 };
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #aborts = new Set<AbortController>();

  constructor(readonly state: GitlabState) {}

  addProject(spec: { path: string; jobs: JobSpec[]; refs?: string[]; members?: Record<string, Role> }): FakeProject {
    const project: FakeProject = {
      id: this.#next.project++,
      path: spec.path,
      refs: new Set(spec.refs ?? ["main"]),
      jobs: spec.jobs,
      triggerTokens: new Set(),
      members: new Map(Object.entries(spec.members ?? {})),
    };
    this.projects.set(project.id, project);
    return project;
  }

  /** A pipeline trigger token of the project (`glptt-…`). */
  addTriggerToken(project: FakeProject): string {
    const token = `glptt-${randomBytes(20).toString("hex")}`;
    project.triggerTokens.add(token);
    return token;
  }

  addRunner(spec: { description: string; tags: string[]; behaviour: RunnerBehaviour; name?: string }): FakeRunner {
    const runner: FakeRunner = {
      id: this.#next.runner++,
      description: spec.description,
      name: spec.name ?? null,
      tags: spec.tags,
      isShared: true,
      paused: false,
      behaviour: spec.behaviour,
    };
    this.runners.push(runner);
    return runner;
  }

  /** Answer the next `remaining` API requests with 429 (or the plan's 5xx). */
  limitNext(plan: RateLimitPlan): void {
    this.rateLimit = plan;
  }

  findProject(idOrPath: string): FakeProject | undefined {
    if (/^\d+$/.test(idOrPath)) return this.projects.get(Number(idOrPath));
    return [...this.projects.values()].find((p) => p.path === idOrPath);
  }

  createPipeline(
    project: FakeProject,
    ref: string,
    source: FakePipeline["source"],
    variables: FakePipeline["variables"],
    user: FakeUser | null,
  ): FakePipeline {
    const now = Date.now();
    const id = this.#next.pipeline++;
    const pipeline: FakePipeline = {
      id,
      iid: [...this.pipelines.values()].filter((p) => p.projectId === project.id).length + 1,
      projectId: project.id,
      sha: createHash("sha1").update(`${project.path}@${ref}`).digest("hex"),
      ref,
      status: "created",
      source,
      createdAt: now,
      updatedAt: now,
      startedAt: null,
      finishedAt: null,
      user,
      variables,
      jobs: [],
      history: ["created"],
    };
    pipeline.jobs = project.jobs.map((spec) => this.#newJob(spec, pipeline.id, now));
    this.pipelines.set(id, pipeline);
    this.#after(PENDING_AFTER_MS, () => this.#enqueue(pipeline));
    return pipeline;
  }

  cancel(pipeline: FakePipeline): void {
    const now = Date.now();
    for (const job of pipeline.jobs) {
      if (job.status === "success" || job.status === "failed" || job.status === "canceled") continue;
      job.status = "canceled";
      job.finishedAt = now;
    }
    this.#update(pipeline);
  }

  close(): void {
    for (const t of this.#timers) clearTimeout(t);
    for (const a of this.#aborts) a.abort();
    this.#timers.clear();
  }

  #newJob(spec: JobSpec, pipelineId: number, now: number): FakeJob {
    const job: FakeJob = {
      id: this.#next.job++,
      name: spec.name,
      stage: spec.stage ?? "test",
      tags: spec.tags,
      status: "created",
      createdAt: now,
      queuedAt: null,
      startedAt: null,
      finishedAt: null,
      failureReason: null,
      runner: null,
      trace: "",
      pipelineId,
    };
    this.jobs.set(job.id, job);
    return job;
  }

  #after(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, ms);
    timer.unref();
    this.#timers.add(timer);
  }

  #enqueue(pipeline: FakePipeline): void {
    const now = Date.now();
    for (const job of pipeline.jobs) {
      if (job.status !== "created") continue;
      job.status = "pending";
      job.queuedAt = now;
      // A job no runner's tags cover stays pending, as on GitLab ("stuck").
      const runner = this.runners.find((r) => !r.paused && job.tags.every((t) => r.tags.includes(t)));
      if (runner) this.#after(runner.behaviour.pickupMs ?? 50, () => this.#start(pipeline, job, runner));
    }
    this.#update(pipeline);
  }

  #start(pipeline: FakePipeline, job: FakeJob, runner: FakeRunner): void {
    if (job.status !== "pending") return;
    job.status = "running";
    job.startedAt = Date.now();
    job.runner = runner;
    job.trace = traceHeader(runner, job);
    this.#update(pipeline);
    const b = runner.behaviour;
    if (b.kind === "succeed")
      this.#after(b.runMs ?? 100, () => this.#finish(pipeline, job, "success", null, `${job.trace}${traceSuccess()}`));
    else if (b.kind === "fail") this.#after(b.runMs ?? 100, () => this.#finish(pipeline, job, "failed", b.failureReason, b.trace));
    else this.#pull(pipeline, job, b);
  }

  #pull(pipeline: FakePipeline, job: FakeJob, b: Extract<RunnerBehaviour, { kind: "pull" }>): void {
    const dir = mkdtempSync(join(tmpdir(), "fake-runner-docker-"));
    const registry = b.image.split("/")[0] ?? "";
    const auth = Buffer.from(`${b.username}:${b.password}`).toString("base64");
    writeFileSync(join(dir, "config.json"), JSON.stringify({ auths: { [registry]: { auth } } }));
    const abort = new AbortController();
    this.#aborts.add(abort);
    const pulling = `${job.trace}${pullingLines(b.image)}`;
    execFile(
      b.docker,
      ["-H", b.dockerHost, "pull", "--quiet", b.image],
      { env: { ...process.env, DOCKER_CONFIG: dir }, signal: abort.signal, timeout: 60_000 },
      (err, _stdout, stderr) => {
        this.#aborts.delete(abort);
        rmSync(dir, { recursive: true, force: true });
        if (abort.signal.aborted) return;
        if (!err) {
          this.#finish(pipeline, job, "success", null, `${pulling}${traceSuccess()}`);
          return;
        }
        const daemon =
          String(stderr)
            .trim()
            .split("\n")
            .filter((l) => l !== "")
            .pop() ?? String(err.message);
        this.#finish(pipeline, job, "failed", "runner_system_failure", `${pulling}${pullFailureLines(b.image, daemon)}`);
      },
    );
  }

  #finish(pipeline: FakePipeline, job: FakeJob, status: "success" | "failed", failureReason: string | null, trace: string): void {
    if (job.status !== "running") return;
    job.status = status;
    job.failureReason = failureReason;
    job.finishedAt = Date.now();
    job.trace = trace;
    this.#update(pipeline);
  }

  /** The pipeline's status from its jobs, as GitLab derives it. */
  #update(pipeline: FakePipeline): void {
    const now = Date.now();
    const statuses = pipeline.jobs.map((j) => j.status);
    const done = (s: JobStatus) => s === "success" || s === "failed" || s === "canceled";
    let status: JobStatus;
    if (statuses.every(done)) {
      status = statuses.includes("failed") ? "failed" : statuses.includes("canceled") ? "canceled" : "success";
    } else if (statuses.some((s) => s === "running" || done(s))) {
      status = "running";
    } else if (statuses.includes("pending")) {
      status = "pending";
    } else {
      status = "created";
    }
    if (status === "running" && pipeline.startedAt === null) pipeline.startedAt = now;
    if (done(status) && pipeline.finishedAt === null) pipeline.finishedAt = now;
    if (status !== pipeline.status) pipeline.history.push(status);
    pipeline.status = status;
    pipeline.updatedAt = now;
  }
}

const states = new WeakMap<GitlabState, CiState>();

/** The CI state of a fake GitLab instance (created on first use). */
export function ciState(state: GitlabState): CiState {
  let ci = states.get(state);
  if (!ci) {
    ci = new CiState(state);
    states.set(state, ci);
  }
  return ci;
}

// GitLab Runner's trace format: ANSI colours, `\e[0K` erase-line, and collapsible sections.
const ESC = "\x1b";
function section(name: string, at: number, title: string): string {
  return `${ESC}[0Ksection_start:${Math.floor(at / 1000)}:${name}\r${ESC}[0K${ESC}[0K${ESC}[36;1m${title}${ESC}[0;m\n`;
}
function sectionEnd(name: string, at: number): string {
  return `${ESC}[0Ksection_end:${Math.floor(at / 1000)}:${name}\r${ESC}[0K\n`;
}

export function traceHeader(runner: FakeRunner, job: FakeJob): string {
  const at = Date.now();
  return (
    `${ESC}[0KRunning with gitlab-runner 17.5.0 (66a723c3)${ESC}[0;m\n` +
    `${ESC}[0K  on ${runner.description} t3_${runner.id}abc, system ID: s_0123456789ab${ESC}[0;m\n` +
    section("prepare_executor", at, `Preparing the "docker" executor`) +
    `${ESC}[0KUsing Docker executor with image for job ${job.name} ...${ESC}[0;m\n`
  );
}

function pullingLines(image: string): string {
  return `${ESC}[0KPulling docker image ${image} ...${ESC}[0;m\n`;
}

/** What GitLab Runner writes when the Docker executor cannot pull the job image. */
export function pullFailureLines(image: string, daemonError: string): string {
  return (
    `${ESC}[0;33mWARNING: Failed to pull image with policy "always": ${daemonError} (manager.go:250:0s)${ESC}[0;m\n` +
    `${ESC}[31;1mERROR: Job failed: failed to pull image "${image}" with specified policies [always]: ${daemonError} (manager.go:250:0s)${ESC}[0;m\n`
  );
}

function traceSuccess(): string {
  const at = Date.now();
  return (
    section("step_script", at, 'Executing "step_script" stage of the job script') +
    `${ESC}[32;1m$ echo ci-prober canary ok${ESC}[0;m\nci-prober canary ok\n` +
    sectionEnd("step_script", at) +
    `${ESC}[32;1mJob succeeded${ESC}[0;m\n`
  );
}
