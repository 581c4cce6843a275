import type { Secret } from "../secret.js";
import type { GitlabClient } from "./client.js";
import { jobListSchema, pipelineListSchema, pipelineSchema, pipelineVariablesSchema, type Job, type Pipeline } from "./schema.js";

/** Statuses after which a pipeline does not change by itself. */
export const FINISHED_STATUSES: ReadonlySet<string> = new Set(["success", "failed", "canceled", "skipped"]);

export interface CallOptions {
  signal: AbortSignal;
  /** Epoch ms: no retry wait ends after it. */
  deadline?: number;
}

/** `/projects/ci%2Fcanary`: a project path or numeric id, URL-encoded as the API wants it. */
export function projectPath(project: string): string {
  return `/projects/${encodeURIComponent(project)}`;
}

/** POST /projects/:id/pipeline with the variables as `env_var`s. */
export function createPipeline(
  client: GitlabClient,
  project: string,
  ref: string,
  variables: Record<string, string>,
  opts: CallOptions,
): Promise<Pipeline> {
  const list = Object.entries(variables).map(([key, value]) => ({ key, value, variable_type: "env_var" }));
  return client.request("POST", `${projectPath(project)}/pipeline`, { ...opts, schema: pipelineSchema, json: { ref, variables: list } });
}

/** POST /projects/:id/trigger/pipeline: the trigger token goes in the body, and no PRIVATE-TOKEN with it. */
export function triggerPipeline(
  client: GitlabClient,
  project: string,
  ref: string,
  triggerToken: Secret,
  variables: Record<string, string>,
  opts: CallOptions,
): Promise<Pipeline> {
  return client.request("POST", `${projectPath(project)}/trigger/pipeline`, {
    ...opts,
    schema: pipelineSchema,
    token: null,
    json: { token: triggerToken.reveal(), ref, variables },
  });
}

export function getPipeline(client: GitlabClient, project: string, id: number, opts: CallOptions): Promise<Pipeline> {
  return client.request("GET", `${projectPath(project)}/pipelines/${id}`, { ...opts, schema: pipelineSchema });
}

/** Jobs of a pipeline, oldest first. One page of 100: a canary pipeline has one job per runner tag. */
export async function pipelineJobs(client: GitlabClient, project: string, id: number, opts: CallOptions): Promise<Job[]> {
  const jobs = await client.request("GET", `${projectPath(project)}/pipelines/${id}/jobs`, {
    ...opts,
    schema: jobListSchema,
    query: { per_page: 100 },
  });
  return [...jobs].sort((a, b) => a.id - b.id);
}

export function cancelPipeline(client: GitlabClient, project: string, id: number, opts: CallOptions): Promise<Pipeline> {
  return client.request("POST", `${projectPath(project)}/pipelines/${id}/cancel`, { ...opts, schema: pipelineSchema });
}

/** Pipelines of a ref that are still going, newest first. */
export async function activePipelines(client: GitlabClient, project: string, ref: string, opts: CallOptions): Promise<Pipeline[]> {
  const found = new Map<number, Pipeline>();
  // The API filters by one status at a time; the canary's own pipelines are created, pending or running.
  // Asked in lifecycle order: a pipeline that moves on between two requests (pending -> running) is
  // then seen by the later one, never missed by both (asked running-first it fell between them).
  for (const status of ["created", "pending", "running"]) {
    const page = await client.request("GET", `${projectPath(project)}/pipelines`, {
      ...opts,
      schema: pipelineListSchema,
      query: { status, ref, per_page: 100, order_by: "id", sort: "desc" },
    });
    for (const p of page) found.set(p.id, p);
  }
  return [...found.values()].sort((a, b) => b.id - a.id);
}

export async function pipelineVariables(
  client: GitlabClient,
  project: string,
  id: number,
  opts: CallOptions,
): Promise<Record<string, string>> {
  const list = await client.request("GET", `${projectPath(project)}/pipelines/${id}/variables`, {
    ...opts,
    schema: pipelineVariablesSchema,
  });
  return Object.fromEntries(list.map((v) => [v.key, v.value ?? ""]));
}

/** GET /projects/:id/jobs/:job_id/trace: the job log, plain text. */
export function jobTrace(client: GitlabClient, project: string, jobId: number, opts: CallOptions): Promise<string> {
  return client.request("GET", `${projectPath(project)}/jobs/${jobId}/trace`, { ...opts, expect: "text" });
}
