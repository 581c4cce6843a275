import { z } from "zod";

// Payloads of the Docker Engine API as ci-prober reads them. Objects are not
// strict: the daemon adds fields between versions and they do not matter here.

/** The body of an Engine API error answer. */
export const daemonMessageSchema = z.object({ message: z.string() });

/** POST /auth answer. */
export const authResponseSchema = z.object({
  Status: z.string().optional(),
  IdentityToken: z.string().optional(),
});

/** One JSON line of the /images/create progress stream. */
export const progressEventSchema = z.object({
  status: z.string().optional(),
  id: z.string().optional(),
  progressDetail: z.object({ current: z.number().optional(), total: z.number().optional() }).optional(),
  error: z.string().optional(),
  errorDetail: z.object({ message: z.string().optional(), code: z.number().optional() }).optional(),
});

export type ProgressEvent = z.output<typeof progressEventSchema>;

/** POST /containers/{id}/wait answer. */
export const waitResponseSchema = z.object({
  StatusCode: z.number().int(),
  Error: z.object({ Message: z.string() }).nullish(),
});

/** GET /containers/json entries (only what removal needs). */
export const containerListSchema = z.array(z.object({ Id: z.string().min(1) }));
