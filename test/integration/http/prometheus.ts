import { z } from "zod";
export { query } from "../../helpers/alerts/live.js";

/** /api/v1/targets with the fields this test reads. */
export const targetsResponseSchemaLoose = z.object({
  data: z.object({
    activeTargets: z.array(z.object({ labels: z.record(z.string(), z.string()), health: z.string(), lastError: z.string() })),
  }),
});
