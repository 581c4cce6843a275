import type { Credential, Runner } from "../types.js";
import { loadDockerConfigs } from "./docker-config.js";
import type { HelperOptions } from "./helper.js";
import { jobTokenSource, resolve, resolveDockerConfig, type Resolved, type ResolvedSource } from "./resolve.js";

export { expandRunners } from "./runner-config.js";
export { kindFromUsername } from "./kind.js";
export { credentialRow, type CredentialRow } from "./format.js";
export { ANY_REGISTRY, JOB_TOKEN_SOURCE, hostOf, resolve, resolveDockerConfig, type Resolved, type ResolvedSource } from "./resolve.js";

/**
 * Options for reading credentials: the caller's AbortSignal (the probe
 * deadline), how long one credential-helper call may take, optionally the
 * environment helpers run with (its PATH finds them), and the registry paths
 * the job's own token answers for (the GitLab instance's registry and
 * dependency proxy), known only with `gitlab:` configured.
 */
export interface CredentialOptions extends HelperOptions {
  jobTokenPaths?: readonly string[];
}

/**
 * Every source of a runner in GitLab Runner's order (SPEC.md, Which credential a
 * runner uses): its DOCKER_AUTH_CONFIG, the runner user's Docker config, the job token.
 * `dockerAuthConfig` replaces the runner's own value when GitLab holds one for the job.
 */
export async function runnerSources(runner: Runner, opts: CredentialOptions, dockerAuthConfig?: ResolvedSource): Promise<ResolvedSource[]> {
  const configs = await loadDockerConfigs(runner, opts.signal);
  const own = runner.dockerAuthConfig ? configs.slice(1) : configs;
  const dac = dockerAuthConfig
    ? Promise.resolve(dockerAuthConfig)
    : runner.dockerAuthConfig && configs[0]
      ? resolveDockerConfig(runner, configs[0], opts)
      : undefined;
  const sources = await Promise.all([...(dac ? [dac] : []), ...own.map((c) => resolveDockerConfig(runner, c, opts))]);
  if (opts.jobTokenPaths && opts.jobTokenPaths.length > 0) sources.push(jobTokenSource(runner, opts.jobTokenPaths));
  return sources;
}

/** A runner's credentials resolved: each marked in use or shadowed, and the look-up its probes use. */
export async function resolveRunner(runner: Runner, opts: CredentialOptions): Promise<Resolved> {
  return resolve(await runnerSources(runner, opts));
}

/**
 * Every credential the runner holds, in source order, each with `inUse` and
 * `shadowedBy`: credentials a higher source shadows are listed too, because an
 * operator looking for a stale password wants to see it. A source that cannot
 * be read gives a Credential with `error`; this never throws except when
 * opts.signal aborts.
 */
export async function runnerCredentials(runner: Runner, opts: CredentialOptions): Promise<Credential[]> {
  return (await resolveRunner(runner, opts)).credentials;
}

/**
 * The credential the runner would use for an image or a registry path
 * (`registry.example.jp/ci/canary`), by the same rule that marks `inUse`; undefined
 * when the job pulls anonymously (or with its job token, which only a job has).
 * When nothing answers and a source was dropped, that source's failure comes
 * back: GitLab Runner would silently skip it, which is the failure the prober
 * exists to make visible.
 */
export async function credentialFor(runner: Runner, target: string, opts: CredentialOptions): Promise<Credential | undefined> {
  return (await resolveRunner(runner, opts)).lookup(target);
}
