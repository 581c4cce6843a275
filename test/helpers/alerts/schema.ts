import { z } from "zod";

// Shapes of the files and payloads the alert tests read: our own rule and
// dashboard files, promtool's test file, and what Prometheus and Alertmanager
// answer or deliver. Parsed once where they enter.

const stringMap = z.record(z.string(), z.string());

export const ruleSchema = z.union([
  z.object({
    alert: z.string(),
    expr: z.string(),
    for: z.string().optional(),
    labels: stringMap.optional(),
    annotations: stringMap.optional(),
  }),
  z.object({ record: z.string(), expr: z.string(), labels: stringMap.optional() }),
]);
export type Rule = z.output<typeof ruleSchema>;

export const rulesFileSchema = z.object({
  groups: z.array(z.object({ name: z.string(), interval: z.string().optional(), rules: z.array(ruleSchema) })),
});
export type RulesFile = z.output<typeof rulesFileSchema>;

export const ruleTestsFileSchema = z.object({
  rule_files: z.array(z.string()),
  tests: z.array(
    z.object({
      name: z.string(),
      alert_rule_test: z
        .array(
          z.object({
            eval_time: z.string(),
            alertname: z.string(),
            exp_alerts: z.array(z.object({ exp_labels: stringMap.optional(), exp_annotations: stringMap.optional() })),
          }),
        )
        .optional(),
    }),
  ),
});

const datasourceRef = z.object({ type: z.string(), uid: z.string() });

export const targetSchema = z.object({ refId: z.string(), expr: z.string().optional(), datasource: datasourceRef.optional() });

export interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: z.output<typeof datasourceRef> | undefined;
  targets?: z.output<typeof targetSchema>[] | undefined;
  panels?: Panel[] | undefined;
}

export const panelSchema: z.ZodType<Panel> = z.lazy(() =>
  z.object({
    id: z.number().int(),
    type: z.string(),
    title: z.string(),
    datasource: datasourceRef.optional(),
    targets: z.array(targetSchema).optional(),
    panels: z.array(panelSchema).optional(),
  }),
);

export const dashboardSchema = z.object({
  uid: z.string().min(1),
  title: z.string().min(1),
  schemaVersion: z.number().int().positive(),
  panels: z.array(panelSchema),
  templating: z.object({
    list: z.array(
      z.object({
        name: z.string(),
        type: z.string(),
        query: z.union([z.string(), z.object({ query: z.string() })]).optional(),
        datasource: datasourceRef.optional(),
        allValue: z.string().optional(),
      }),
    ),
  }),
});
export type Dashboard = z.output<typeof dashboardSchema>;

/** Prometheus /api/v1/query (instant queries: a vector or a scalar). */
export const queryResponseSchema = z.object({
  status: z.literal("success"),
  data: z.discriminatedUnion("resultType", [
    z.object({
      resultType: z.literal("vector"),
      result: z.array(z.object({ metric: stringMap, value: z.tuple([z.number(), z.string()]) })),
    }),
    z.object({ resultType: z.literal("scalar"), result: z.tuple([z.number(), z.string()]) }),
  ]),
});

/** Prometheus /api/v1/targets, the part we wait on. */
export const targetsResponseSchema = z.object({
  status: z.literal("success"),
  data: z.object({ activeTargets: z.array(z.object({ health: z.string(), labels: stringMap, lastError: z.string() })) }),
});

/** One POST from Alertmanager's webhook receiver. */
export const webhookPayloadSchema = z.object({
  receiver: z.string(),
  status: z.enum(["firing", "resolved"]),
  alerts: z.array(
    z.object({
      status: z.enum(["firing", "resolved"]),
      labels: stringMap,
      annotations: stringMap,
      startsAt: z.string(),
      endsAt: z.string(),
    }),
  ),
});
export type WebhookPayload = z.output<typeof webhookPayloadSchema>;

/** Alertmanager /api/v2/alerts, the part the inhibition test reads. */
export const alertmanagerAlertsSchema = z.array(
  z.object({ labels: stringMap, status: z.object({ state: z.string(), inhibitedBy: z.array(z.string()) }) }),
);

/** Prometheus /api/v1/labels. */
export const labelsResponseSchema = z.object({ status: z.literal("success"), data: z.array(z.string()) });

/** The fake GitLab's POST /-/test/tokens. */
export const testTokenSchema = z.object({ token: z.string().min(1) });

/** prometheus/alertmanager.yml, the parts the live test rewrites (everything else passes through). */
export const alertmanagerConfigSchema = z.looseObject({
  route: z.looseObject({}),
  receivers: z.array(z.looseObject({ name: z.string(), webhook_configs: z.array(z.looseObject({ url: z.string() })) })),
});
