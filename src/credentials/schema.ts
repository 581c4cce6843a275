import { z } from "zod";

// Schemas of files written by other programs (Docker, GitLab Runner, credential
// helpers). They are loose on purpose: keys those programs ignore (HttpHeaders,
// proxies, [runners.cache], …) must not make ci-prober reject a file they accept.
// A wrong type for a key we read is rejected, as Go's decoders reject it.

/** One `auths` entry of a Docker config.json (docker/cli types.AuthConfig as stored). */
export const authEntrySchema = z.looseObject({
  auth: z.string().nullish(),
  username: z.string().nullish(),
  password: z.string().nullish(),
  identitytoken: z.string().nullish(),
});

/** A Docker config.json, or a DOCKER_AUTH_CONFIG value (the same format inside a string). */
export const dockerConfigSchema = z.looseObject({
  auths: z.record(z.string(), authEntrySchema.nullish()).nullish(),
  credHelpers: z.record(z.string(), z.string()).nullish(),
  credsStore: z.string().nullish(),
});

/** `docker-credential-NAME get` answer (docker-credential-helpers credentials.Credentials). */
export const helperGetSchema = z.looseObject({
  ServerURL: z.string().optional(),
  Username: z.string(),
  Secret: z.string(),
});

/** `docker-credential-NAME list` answer: server URL → username. */
export const helperListSchema = z.record(z.string(), z.string());

const pullPolicy = z.union([z.string(), z.array(z.string())]);

/** The parts of gitlab-runner's config.toml that say where a runner's credentials and engine are. */
export const runnerConfigSchema = z.looseObject({
  runners: z
    .array(
      z.looseObject({
        name: z.string().optional(),
        executor: z.string().optional(),
        environment: z.array(z.string()).optional(),
        docker: z
          .looseObject({
            host: z.string().optional(),
            image: z.string().optional(),
            pull_policy: pullPolicy.optional(),
            tls_cert_path: z.string().optional(),
          })
          .optional(),
      }),
    )
    .optional(),
});

export type DockerConfigFile = z.output<typeof dockerConfigSchema>;
export type AuthEntry = z.output<typeof authEntrySchema>;
export type RunnerConfigFile = z.output<typeof runnerConfigSchema>;
export type RunnerConfigEntry = NonNullable<RunnerConfigFile["runners"]>[number];
