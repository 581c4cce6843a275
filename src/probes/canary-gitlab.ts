import type { GitlabCanaryConfig } from "../config/resolve.js";
import { deadline, sleep } from "../deadline.js";
import { formatDuration } from "../duration.js";
import { oneLine } from "../errors.js";
import { gitlabClient, type GitlabClient } from "../gitlab/client.js";
import {
  activePipelines,
  cancelPipeline,
  createPipeline,
  FINISHED_STATUSES,
  getPipeline,
  jobTrace,
  pipelineJobs,
  pipelineVariables,
  triggerPipeline,
  type CallOptions,
} from "../gitlab/pipeline.js";
import type { Job, Pipeline } from "../gitlab/schema.js";
import { firstErrorLine } from "../gitlab/trace.js";
import { HttpStatusError, ProbeError } from "../reasons.js";
import type { CanaryJob, ProbeResult } from "../types.js";
import { runProbe } from "./run.js";
import type { ProbeBodyContext, ProbeContext } from "./types.js";

/** The variable that marks a pipeline as the prober's own, so a later process can find it. */
export const CANARY_VARIABLE = "CI_PROBER_CANARY";
/** Time allowed to cancel a pipeline once its own deadline has passed. */
const CANCEL_GRACE_MS = 10_000;

export interface GitlabCanaryContext extends ProbeContext<GitlabCanaryConfig> {
  /** Polling of a pipeline: the first wait and the cap it backs off to. Tests shorten them. */
  poll?: { initialMs: number; maxMs: number };
  /** The API client; by default one built from the settings (`canary.gitlab`). */
  client?: GitlabClient;
}

export { gitlabCanaryRunner } from "./index.js";

// One canary pipeline in flight per GitLab project in this process; a second call joins the first.
const inFlight = new Map<string, Promise<ProbeResult>>();

/** The `gitlab` canary: create (or adopt) a pipeline, follow it to its end or timeout, and report each job. Never throws. */
export function gitlabCanary(ctx: GitlabCanaryContext): Promise<ProbeResult> {
  const cfg = ctx.settings;
  const key = `${cfg.url}#${cfg.project}`;
  const running = inFlight.get(key);
  if (running) {
    ctx.logger.info({ project: cfg.project }, "gitlab canary already in flight; joining it");
    return running;
  }
  const result = runProbe("canary", ctx, (c) => canaryRun({ ...ctx, ...c }, cfg)).finally(() => inFlight.delete(key));
  inFlight.set(key, result);
  return result;
}

type CanaryBodyContext = GitlabCanaryContext & ProbeBodyContext<GitlabCanaryConfig>;

async function canaryRun(ctx: CanaryBodyContext, cfg: GitlabCanaryConfig): Promise<void> {
  if (ctx.client) return canaryPipeline(ctx, ctx.client, cfg);
  const client = gitlabClient(cfg, ctx.logger, ctx.gitlabBudget);
  try {
    return await canaryPipeline(ctx, client, cfg);
  } finally {
    await client.close();
  }
}

async function canaryPipeline(ctx: CanaryBodyContext, client: GitlabClient, cfg: GitlabCanaryConfig): Promise<void> {
  const limit = deadline(cfg.timeoutMs, ctx.signal);
  try {
    await followToEnd(ctx, client, cfg, { signal: limit.signal, deadline: limit.at });
  } finally {
    limit.dispose();
  }
}

async function followToEnd(ctx: CanaryBodyContext, client: GitlabClient, cfg: GitlabCanaryConfig, follow: CallOptions): Promise<void> {
  const started = await adoptOrStart(ctx, client, cfg, follow);
  let pipeline: Pipeline;
  try {
    pipeline = await followPipeline(ctx, client, cfg.project, started, follow);
  } catch (err) {
    if (!follow.signal.aborted) throw err;
    throw await timedOut(ctx, client, cfg, started.id);
  }
  const jobs = await describeJobs(ctx, client, cfg.project, await pipelineJobs(client, cfg.project, pipeline.id, follow), follow);
  ctx.record.jobs(jobs);
  if (pipeline.status !== "success") throw new ProbeError("pipeline_failed", failureText(pipeline, jobs));
}

/** Follow a canary pipeline an earlier prober process left going, or create one. */
async function adoptOrStart(ctx: GitlabCanaryContext, client: GitlabClient, cfg: GitlabCanaryConfig, opts: CallOptions): Promise<Pipeline> {
  // Without an API token (trigger token only, public project) the project's pipelines cannot be searched.
  const adopted = cfg.token ? await adoptLeftover(ctx, client, cfg, opts) : undefined;
  if (adopted) return adopted;
  const variables = { ...cfg.variables, [CANARY_VARIABLE]: "1" };
  const pipeline = cfg.triggerToken
    ? await triggerPipeline(client, cfg.project, cfg.ref, cfg.triggerToken, variables, opts)
    : await createPipeline(client, cfg.project, cfg.ref, variables, opts);
  ctx.log.step(`created pipeline ${pipeline.id} on ${cfg.project}@${cfg.ref} (${pipeline.status}) ${pipeline.web_url}`);
  ctx.logger.info({ project: cfg.project, pipeline: pipeline.id }, "gitlab canary pipeline created");
  return pipeline;
}

/**
 * The newest of the prober's own still-going pipelines, if it is younger than
 * the timeout; older ones and any extra are cancelled, so one stays at most.
 */
async function adoptLeftover(
  ctx: GitlabCanaryContext,
  client: GitlabClient,
  cfg: GitlabCanaryConfig,
  opts: CallOptions,
): Promise<Pipeline | undefined> {
  const ours = await ownActivePipelines(ctx, client, cfg, opts);
  const tooOld = (p: Pipeline) => p.created_at != null && Date.now() - Date.parse(p.created_at) > cfg.timeoutMs;
  const [adopt, ...extra] = ours.filter((p) => !tooOld(p));
  for (const p of [...ours.filter(tooOld), ...extra]) await cancelLeftover(ctx, client, cfg, p, opts);
  if (!adopt) return undefined;
  ctx.log.step(`adopted canary pipeline ${adopt.id} left by an earlier run (${adopt.status}) ${adopt.web_url}`);
  ctx.logger.info({ project: cfg.project, pipeline: adopt.id }, "gitlab canary pipeline adopted");
  return adopt;
}

async function cancelLeftover(
  ctx: GitlabCanaryContext,
  client: GitlabClient,
  cfg: GitlabCanaryConfig,
  p: Pipeline,
  opts: CallOptions,
): Promise<void> {
  try {
    await cancelPipeline(client, cfg.project, p.id, opts);
    ctx.log.step(`canceled canary pipeline ${p.id} left by an earlier run (${p.status})`);
  } catch (err) {
    // A token below Developer may not cancel; the job timeout of .gitlab-ci.yml ends that pipeline instead.
    if (!(err instanceof HttpStatusError && err.status === 403)) throw err;
    ctx.log.step(`canary pipeline ${p.id} left by an earlier run could not be canceled: ${oneLine(err)}`);
  }
}

/** Still-going pipelines of the canary ref that are the prober's own, newest first. */
async function ownActivePipelines(
  ctx: GitlabCanaryContext,
  client: GitlabClient,
  cfg: GitlabCanaryConfig,
  opts: CallOptions,
): Promise<Pipeline[]> {
  // Only API- and trigger-created pipelines can be the canary's; pushes and schedules are someone else's.
  const candidates = (await activePipelines(client, cfg.project, cfg.ref, opts)).filter(
    (p) => p.source === undefined || p.source === "api" || p.source === "trigger",
  );
  const ours: Pipeline[] = [];
  for (const p of candidates) {
    if (await isCanary(ctx, client, cfg, p, opts)) ours.push(p);
  }
  return ours;
}

/**
 * CI_PROBER_CANARY=1 among the pipeline's variables. A token that may not read
 * variables (below Developer) falls back on the source the canary itself uses.
 */
async function isCanary(
  ctx: GitlabCanaryContext,
  client: GitlabClient,
  cfg: GitlabCanaryConfig,
  p: Pipeline,
  opts: CallOptions,
): Promise<boolean> {
  try {
    return (await pipelineVariables(client, cfg.project, p.id, opts))[CANARY_VARIABLE] === "1";
  } catch (err) {
    if (!(err instanceof HttpStatusError && err.status === 403)) throw err;
    ctx.log.step(`pipeline ${p.id}: variables not readable (403); judging by its source (${p.source ?? "unknown"})`);
    return p.source === (cfg.triggerToken ? "trigger" : "api");
  }
}

/** Poll until the pipeline finishes, waiting longer each time (GitLab's API is shared with every developer). */
async function followPipeline(
  ctx: GitlabCanaryContext,
  client: GitlabClient,
  project: string,
  first: Pipeline,
  opts: CallOptions,
): Promise<Pipeline> {
  const poll = ctx.poll ?? { initialMs: 2000, maxMs: 30_000 };
  let pipeline = first;
  let waitMs = poll.initialMs;
  while (!FINISHED_STATUSES.has(pipeline.status)) {
    // Cut to the deadline: a 30 s backoff must not carry the probe past its timeout.
    await sleep(waitMs, opts.signal);
    waitMs = Math.min(Math.round(waitMs * 1.5), poll.maxMs);
    const next = await getPipeline(client, project, pipeline.id, opts);
    if (next.status !== pipeline.status) ctx.log.step(`pipeline ${next.id}: ${next.status}`);
    pipeline = next;
  }
  return pipeline;
}

/** The timeout passed: record where the jobs were, cancel the pipeline, and say so. */
async function timedOut(ctx: CanaryBodyContext, client: GitlabClient, cfg: GitlabCanaryConfig, id: number): Promise<ProbeError> {
  // The probe's own deadline has passed by now; the pipeline must still be cancelled, or it holds a runner slot for nothing.
  const limit = deadline(CANCEL_GRACE_MS);
  const grace: CallOptions = { signal: limit.signal, deadline: limit.at };
  let jobs: CanaryJob[] = [];
  let canceled = false;
  try {
    jobs = (await pipelineJobs(client, cfg.project, id, grace)).map(toCanaryJob);
    const status = (await cancelPipeline(client, cfg.project, id, grace)).status;
    canceled = true;
    ctx.log.step(`pipeline ${id} canceled after ${formatDuration(cfg.timeoutMs)} (${status})`);
  } catch (err) {
    ctx.log.step(`pipeline ${id}: cancel failed: ${oneLine(err)}`);
    ctx.logger.warn({ project: cfg.project, pipeline: id, error: oneLine(err) }, "gitlab canary pipeline cancel failed");
  } finally {
    limit.dispose();
  }
  for (const job of jobs) ctx.log.step(jobLine(job));
  ctx.record.jobs(jobs);
  const waiting = jobs.filter((j) => j.runner === null).map((j) => j.name);
  const why = waiting.length > 0 ? `; no runner picked up ${waiting.join(", ")}` : "";
  const text = `pipeline ${id} did not finish within ${formatDuration(cfg.timeoutMs)}${why}; ${canceled ? "canceled" : "cancel failed"}`;
  return new ProbeError("pipeline_timeout", text);
}

/** Jobs as CanaryJobs, with the explaining trace line of each failed one. */
async function describeJobs(
  ctx: GitlabCanaryContext,
  client: GitlabClient,
  project: string,
  jobs: Job[],
  opts: CallOptions,
): Promise<CanaryJob[]> {
  const out: CanaryJob[] = [];
  for (const job of jobs) {
    const canaryJob = toCanaryJob(job);
    if (job.status === "failed") {
      try {
        const line = firstErrorLine(await jobTrace(client, project, job.id, opts));
        if (line !== undefined) canaryJob.errorLine = line;
      } catch (err) {
        ctx.log.step(`job ${job.id}: trace unavailable: ${oneLine(err)}`);
      }
      ctx.logger.warn(
        {
          project,
          job: job.id,
          name: job.name,
          runner: canaryJob.runner,
          failureReason: canaryJob.failureReason,
          errorLine: canaryJob.errorLine,
        },
        "gitlab canary job failed",
      );
    }
    ctx.log.step(jobLine(canaryJob));
    out.push(canaryJob);
  }
  return out;
}

export function toCanaryJob(job: Job): CanaryJob {
  const runner = job.runner ? job.runner.description || job.runner.name || `#${job.runner.id}` : null;
  return {
    id: job.id,
    name: job.name,
    status: job.status,
    runner,
    queuedSeconds: job.queued_duration ?? null,
    durationSeconds: job.duration ?? null,
    failureReason: job.failure_reason ?? null,
  };
}

function jobLine(job: CanaryJob): string {
  const timing = `queued ${job.queuedSeconds ?? "-"}s, ran ${job.durationSeconds ?? "-"}s`;
  const failure = job.failureReason ? ` (${job.failureReason})` : "";
  const line = job.errorLine ? `: ${job.errorLine}` : "";
  return `job ${job.id} ${job.name} on ${job.runner ?? "no runner"}: ${job.status}${failure}, ${timing}${line}`;
}

/** `pipeline 12 failed: job canary-a on runner-a: runner_system_failure: ERROR: …`. */
function failureText(pipeline: Pipeline, jobs: CanaryJob[]): string {
  const failed = jobs.filter((j) => j.status === "failed");
  const first = failed[0];
  if (!first) return `pipeline ${pipeline.id} ${pipeline.status}`;
  const reason = first.failureReason ? `: ${first.failureReason}` : "";
  const line = first.errorLine ? `: ${first.errorLine}` : "";
  const more = failed.length > 1 ? ` (and ${failed.length - 1} more failed jobs)` : "";
  return `pipeline ${pipeline.id} ${pipeline.status}: job ${first.name} on ${first.runner ?? "no runner"}${reason}${line}${more}`;
}
