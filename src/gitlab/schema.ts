import { z } from "zod";

/**
 * GitLab REST API v4 payloads, as far as ci-prober reads them. Objects are
 * loose (GitLab adds fields between versions); only the fields used are named.
 */

/** `{"message": "401 Unauthorized"}`, `{"error": "…"}`, or `{"message": {"base": ["…"]}}` on a 400. */
export const errorBodySchema = z.object({
  message: z.unknown().optional(),
  error: z.string().optional(),
  error_description: z.string().optional(),
});

export const pipelineStatusSchema = z.string();

export const pipelineSchema = z.object({
  id: z.number().int(),
  iid: z.number().int().optional(),
  project_id: z.number().int(),
  sha: z.string(),
  ref: z.string(),
  status: pipelineStatusSchema,
  source: z.string().optional(),
  created_at: z.string().nullable().optional(),
  updated_at: z.string().nullable().optional(),
  started_at: z.string().nullable().optional(),
  finished_at: z.string().nullable().optional(),
  duration: z.number().nullable().optional(),
  queued_duration: z.number().nullable().optional(),
  web_url: z.string(),
});
export type Pipeline = z.infer<typeof pipelineSchema>;

export const pipelineListSchema = z.array(pipelineSchema);

export const pipelineVariableSchema = z.object({
  key: z.string(),
  value: z.string().nullable(),
  variable_type: z.string().optional(),
});
export const pipelineVariablesSchema = z.array(pipelineVariableSchema);

/** The `runner` of a job: null until a runner picked it up. */
export const jobRunnerSchema = z.object({
  id: z.number().int(),
  description: z.string().nullable(),
  name: z.string().nullable().optional(),
  active: z.boolean().optional(),
  paused: z.boolean().optional(),
  is_shared: z.boolean().optional(),
  runner_type: z.string().optional(),
  online: z.boolean().nullable().optional(),
  status: z.string().optional(),
});

export const jobSchema = z.object({
  id: z.number().int(),
  name: z.string(),
  stage: z.string(),
  status: z.string(),
  created_at: z.string().nullable().optional(),
  started_at: z.string().nullable().optional(),
  finished_at: z.string().nullable().optional(),
  duration: z.number().nullable().optional(),
  queued_duration: z.number().nullable().optional(),
  /** Only present on failed jobs. */
  failure_reason: z.string().optional(),
  runner: jobRunnerSchema.nullable().optional(),
  web_url: z.string().optional(),
});
export type Job = z.infer<typeof jobSchema>;

export const jobListSchema = z.array(jobSchema);
