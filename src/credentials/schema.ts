import { z } from "zod";

// Schemas of files written by other programs (Docker, GitLab Runner, credential
// helpers). They are loose on purpose: keys those programs ignore (HttpHeaders,
// proxies, [runners.cache], …) must not make ci-prober reject a file they accept.
// A wrong type for a key we read is rejected, as Go's decoders reject it. The
// messages never quote the value: in these files a value may be a secret.

const str = z.string({ error: "expected a string" });
const strList = z.array(str, { error: "expected a list of strings" });

/** One `auths` entry of a Docker config.json (docker/cli types.AuthConfig as stored). */
export const authEntrySchema = z.looseObject(
  {
    auth: str.nullish(),
    username: str.nullish(),
    password: str.nullish(),
    identitytoken: str.nullish(),
  },
  { error: "expected an object" },
);

/** A Docker config.json, or a DOCKER_AUTH_CONFIG value (the same format inside a string). */
export const dockerConfigSchema = z.looseObject(
  {
    auths: z.record(z.string(), authEntrySchema.nullish(), { error: "expected an object of registry to credential" }).nullish(),
    credHelpers: z.record(z.string(), str, { error: "expected an object of registry to helper name" }).nullish(),
    credsStore: str.nullish(),
  },
  { error: "expected a JSON object" },
);

/** `docker-credential-NAME get` answer (docker-credential-helpers credentials.Credentials). */
export const helperGetSchema = z.looseObject({
  ServerURL: z.string().optional(),
  Username: z.string(),
  Secret: z.string(),
});

/** `docker-credential-NAME list` answer: server URL → username. */
export const helperListSchema = z.record(z.string(), z.string());

const pullPolicy = z.union([z.string(), z.array(z.string())], { error: "expected a string or a list of strings" });

/** The parts of gitlab-runner's config.toml that say where a runner's credentials and engine are. */
export const runnerConfigSchema = z.looseObject({
  runners: z
    .array(
      z.looseObject(
        {
          name: str.optional(),
          executor: str.optional(),
          environment: strList.optional(),
          docker: z
            .looseObject(
              {
                host: str.optional(),
                image: str.optional(),
                pull_policy: pullPolicy.optional(),
                tls_cert_path: str.optional(),
              },
              { error: "expected a table" },
            )
            .optional(),
        },
        { error: "expected a table" },
      ),
      { error: "expected an array of tables ([[runners]])" },
    )
    .optional(),
});

export type DockerConfigFile = z.output<typeof dockerConfigSchema>;
export type AuthEntry = z.output<typeof authEntrySchema>;
export type RunnerConfigFile = z.output<typeof runnerConfigSchema>;
export type RunnerConfigEntry = NonNullable<RunnerConfigFile["runners"]>[number];
