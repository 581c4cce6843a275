import { z } from "zod";
import { validate as validCron } from "node-cron";
import { parseDuration } from "../duration.js";
import { parseImageRef } from "../image.js";

// Strict schema of ci-prober.yml (SPEC.md, Config). Every object rejects unknown keys.

const duration = z.unknown().transform((value, ctx) => {
  const ms = typeof value === "string" ? parseDuration(value) : undefined;
  if (ms === undefined) {
    ctx.addIssue({ code: "custom", message: `expected a duration like 30s, got ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return ms;
});

const positiveDuration = duration.refine((ms) => ms > 0, { message: "expected a duration above 0s" });

const listenAddress = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]*):\d{1,5}$/, { message: "expected host:port, like 0.0.0.0:9839" });

const mode = z.enum(["engine", "direct"], { message: 'expected "engine" or "direct"' });
const image = z.string().superRefine((value, ctx) => {
  try {
    parseImageRef(value);
  } catch {
    ctx.addIssue({
      code: "custom",
      message: `expected an image reference like registry.example.jp/ci/canary:latest, got ${JSON.stringify(value)}`,
    });
  }
});
const images = z.array(image);
const cronExpression = z.string().refine((value) => validCron(value), {
  message: "expected a cron expression like */5 * * * * (node-cron syntax)",
});
const platform = z.string().regex(/^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/, { message: "expected os/arch like linux/amd64" });
const dockerHost = z.string().regex(/^(unix|tcp|npipe|ssh):\/\/.+$/, { message: "expected unix:///path or tcp://host:port" });

const runnerEntry = z
  .strictObject({
    runner_config: z.string().min(1).optional(),
    name: z.string().min(1).optional(),
    docker_config: z.string().min(1).optional(),
    docker_auth_config_file: z.string().min(1).optional(),
    docker_host: dockerHost.optional(),
    tls_cert_path: z.string().min(1).optional(),
    mode: mode.optional(),
    images: images.optional(),
    interval: positiveDuration.optional(),
    timeout: positiveDuration.optional(),
    fresh: z.boolean().optional(),
    full_pull_interval: duration.optional(),
  })
  .superRefine((entry, ctx) => {
    if ((entry.runner_config === undefined) === (entry.name === undefined)) {
      ctx.addIssue({ code: "custom", message: "expected exactly one of runner_config or name" });
    }
  });

const localCanary = z.strictObject({
  image,
  command: z.array(z.string()).min(1).optional(),
  /** Docker network mode for the canary container; none unless configured. */
  network: z.string().min(1).optional(),
  /** A line the container's output must contain. */
  expect_output: z.string().optional(),
  interval: positiveDuration.optional(),
  timeout: positiveDuration.optional(),
  /** Runner names to run it on; every engine-mode runner when absent. */
  runners: z.array(z.string()).optional(),
});

const gitlabCanary = z
  .strictObject({
    url: z.url({ message: "expected a URL like https://gitlab.example.jp" }),
    project: z.union([z.string().min(1), z.number().int().positive()]),
    ref: z.string().min(1).default("main"),
    token_file: z.string().min(1).optional(),
    token: z.string().min(1).optional(),
    trigger_token_file: z.string().min(1).optional(),
    variables: z.record(z.string(), z.string()).optional(),
    interval: positiveDuration.optional(),
    schedule: cronExpression.optional(),
    timeout: positiveDuration.optional(),
    ca_file: z.string().optional(),
  })
  .superRefine((c, ctx) => {
    if (c.token_file === undefined && c.token === undefined && c.trigger_token_file === undefined) {
      ctx.addIssue({ code: "custom", message: "expected token_file, token (a ${ENV} reference) or trigger_token_file" });
    }
  });

const gitlab = z.strictObject({
  url: z.url({ message: "expected a URL like https://gitlab.example.jp" }),
  token_file: z.string().min(1).optional(),
  token: z.string().min(1).optional(),
  ca_file: z.string().optional(),
  /** How often owner and token checks run. */
  interval: positiveDuration.optional(),
  /** GitLab API requests a minute, all of ci-prober's together (owner checks, canary, crawls). */
  requests_per_minute: z.number().int().min(1, { message: "expected an integer of at least 1" }).optional(),
  /** The instance's container registry, when the API should not be asked (host[:port]). */
  registry: z
    .string()
    .regex(/^[^/\s]+$/, { message: "expected a registry host[:port] like registry.example.jp" })
    .optional(),
  /** DOCKER_AUTH_CONFIG held as CI/CD variables: true for every group and project, or a list of full paths. */
  variables: z
    .union([z.boolean(), z.array(z.string().min(1))], { error: "expected true, false or a list of group and project full paths" })
    .optional(),
});

/** After unauthorized/forbidden: when a refused secret is tried again (SPEC.md, Probes → doing no harm). */
const authBackoff = z.strictObject({
  max_pause: positiveDuration.optional(),
  max_failures: z.number().int().min(1, { message: "expected an integer of at least 1" }).optional(),
  window: positiveDuration.optional(),
});

const registryTransport = z.strictObject({
  ca_file: z.string().min(1).optional(),
  insecure: z.boolean().optional(),
  platform: platform.optional(),
  full_pull_interval: duration.optional(),
});

export const configSchema = z
  .strictObject({
    interval: positiveDuration.optional(),
    schedule: cronExpression.optional(),
    timeout: positiveDuration.optional(),
    concurrency: z.number().int().min(1, { message: "expected an integer of at least 1" }).optional(),
    listen_address: listenAddress.optional(),
    images: images.optional(),
    platform: platform.optional(),
    helper_timeout: positiveDuration.optional(),
    log_level: z.enum(["debug", "info", "warn", "error"]).optional(),
    runners: z.array(runnerEntry).optional(),
    canary: z.strictObject({ local: localCanary.optional(), gitlab: gitlabCanary.optional() }).optional(),
    gitlab: gitlab.optional(),
    registries: z.record(z.string(), registryTransport).optional(),
    full_pull_interval: duration.optional(),
    auth_backoff: authBackoff.optional(),
    /** TLS and basic auth for the HTTP endpoints, in Prometheus exporter-toolkit's format (src/http/web-config.ts). */
    web_config_file: z.string().min(1).optional(),
  })
  .superRefine((c, ctx) => {
    if (c.interval !== undefined && c.schedule !== undefined) {
      ctx.addIssue({ code: "custom", path: ["schedule"], message: "expected either interval or schedule, not both" });
    }
  });

export type RawConfig = z.output<typeof configSchema>;
export type RawRunnerEntry = z.output<typeof runnerEntry>;
