import { existsSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { errnoText, InputError } from "../errors.js";
import { normalizeRegistry } from "../image.js";
import type { Mode } from "../types.js";
import { keepSecrets, Scrubber, Secret, withSecretScope } from "../secret.js";
import type { RawConfig, RawRunnerEntry } from "./schema.js";

export const EMBEDDED_DEFAULT = "<embedded default>";
export const DEFAULT_LISTEN_ADDRESS = "0.0.0.0:9839";

export interface RunnerSpec {
  /** `ci-prober.yml#runners[0]`: where this entry was written. */
  source: string;
  /** Set for entries that expand every [[runners]] of a gitlab-runner config.toml. */
  runnerConfig?: string;
  name?: string;
  dockerConfig?: string;
  dockerAuthConfigFile?: string;
  dockerHost?: string;
  tlsCertPath?: string;
  mode: Mode;
  images?: string[];
  intervalMs?: number;
  timeoutMs?: number;
  fresh: boolean;
  fullPullIntervalMs?: number;
}

export interface RegistryTransport {
  /** PEM text of the CA bundle to trust for this registry. */
  ca?: string;
  caFile?: string;
  insecure: boolean;
  platform?: string;
  /** Set only when written: Docker Hub gets full pulls only where asked for. */
  fullPullIntervalMs?: number;
}

export interface LocalCanaryConfig {
  image: string;
  command: string[];
  network: string;
  expectOutput?: string;
  intervalMs?: number;
  timeoutMs?: number;
  runners?: string[];
}

export interface GitlabCanaryConfig {
  url: string;
  project: string;
  ref: string;
  token?: Secret;
  triggerToken?: Secret;
  variables: Record<string, string>;
  intervalMs: number;
  schedule?: string;
  timeoutMs: number;
  ca?: string;
}

export interface GitlabConfig {
  url: string;
  token?: Secret;
  ca?: string;
  intervalMs: number;
  /** The GitLab API budget: requests a minute across owner checks, canary and crawls. */
  requestsPerMinute?: number;
  /** The instance's container registry host[:port]; learnt from the API when absent. */
  registry?: string;
  /** Read DOCKER_AUTH_CONFIG held in GitLab: every group and project (true), or these full paths of groups and projects. */
  variables?: true | string[];
}

export interface AuthBackoffConfig {
  capMs: number;
  maxFailures: number;
  windowMs: number;
}

export interface Config {
  /** The file it was read from, or EMBEDDED_DEFAULT. */
  file: string;
  intervalMs: number;
  schedule?: string;
  timeoutMs: number;
  concurrency: number;
  listenAddress: string;
  images: string[];
  platform: string;
  helperTimeoutMs: number;
  logLevel: "debug" | "info" | "warn" | "error";
  runners: RunnerSpec[];
  canary: { local?: LocalCanaryConfig; gitlab?: GitlabCanaryConfig };
  gitlab?: GitlabConfig;
  /** Keyed by normalised registry host[:port]. */
  registries: Record<string, RegistryTransport>;
  /** Set only when written (see probes/pull-plan.ts for the default and Docker Hub). */
  fullPullIntervalMs?: number;
  /** Absent: DEFAULT_AUTH_BACKOFF (10m, 10 failures per 3m). */
  authBackoff?: AuthBackoffConfig;
  /** exporter-toolkit web config (TLS, basic auth, headers) for the HTTP server; `--web.config.file` overrides it. */
  webConfigFile?: string;
}

/**
 * Turn a validated raw config into the Config the prober uses: defaults applied, paths resolved, files read.
 * Its secrets are kept while it is one of the two newest configs resolved: a reload forgets the old ones.
 */
export function resolveConfig(raw: RawConfig, file: string, env: NodeJS.ProcessEnv): Config {
  const secrets = new Scrubber();
  const config = withSecretScope(secrets, () => resolveConfigIn(raw, file, env));
  keepSecrets("config", secrets);
  return config;
}

function resolveConfigIn(raw: RawConfig, file: string, env: NodeJS.ProcessEnv): Config {
  const files = new ConfigFiles(file);
  const gitlab = raw.gitlab ? resolveGitlab(raw.gitlab, files) : undefined;
  return {
    file,
    intervalMs: raw.interval ?? 60_000,
    ...(raw.schedule !== undefined ? { schedule: raw.schedule } : {}),
    timeoutMs: raw.timeout ?? 30_000,
    concurrency: raw.concurrency ?? 8,
    listenAddress: raw.listen_address ?? DEFAULT_LISTEN_ADDRESS,
    images: raw.images ?? [],
    platform: raw.platform ?? "linux/amd64",
    helperTimeoutMs: raw.helper_timeout ?? 10_000,
    logLevel: raw.log_level ?? "info",
    runners: resolveRunners(raw.runners ?? [], files, env),
    canary: resolveCanary(raw.canary, files),
    ...(gitlab ? { gitlab } : {}),
    registries: resolveRegistries(raw.registries ?? {}, files),
    ...(raw.full_pull_interval !== undefined ? { fullPullIntervalMs: raw.full_pull_interval } : {}),
    authBackoff: {
      capMs: raw.auth_backoff?.max_pause ?? 10 * 60_000,
      maxFailures: raw.auth_backoff?.max_failures ?? 10,
      windowMs: raw.auth_backoff?.window ?? 3 * 60_000,
    },
    ...(raw.web_config_file !== undefined ? { webConfigFile: files.mustExist(raw.web_config_file, "web_config_file") } : {}),
  };
}

/** Paths named in the config: relative to the config file, checked to exist, read with errors naming the key. */
class ConfigFiles {
  readonly label: string;
  readonly #base: string;

  constructor(file: string) {
    this.label = file;
    this.#base = file === EMBEDDED_DEFAULT ? process.cwd() : dirname(file);
  }

  path(p: string): string {
    return isAbsolute(p) ? p : resolve(this.#base, p);
  }

  mustExist(p: string, key: string): string {
    const full = this.path(p);
    if (!existsSync(full)) throw new InputError(`${this.label}: ${key}: file ${full} does not exist`);
    return full;
  }

  text(p: string, key: string): string {
    const full = this.mustExist(p, key);
    try {
      return readFileSync(full, "utf8");
    } catch (err) {
      throw new InputError(`${this.label}: ${key}: cannot read ${full}: ${errnoText(err)}`);
    }
  }

  secret(p: string, key: string): Secret {
    const value = this.text(p, key).trim();
    if (value === "") throw new InputError(`${this.label}: ${key}: file ${this.path(p)} is empty`);
    return new Secret(value);
  }
}

function resolveRunners(entries: RawRunnerEntry[], files: ConfigFiles, env: NodeJS.ProcessEnv): RunnerSpec[] {
  const defaultHost = env.DOCKER_HOST && env.DOCKER_HOST !== "" ? env.DOCKER_HOST : "unix:///var/run/docker.sock";
  const names = new Map<string, number>();
  return entries.map((r, i) => {
    const key = `runners[${i}]`;
    if (r.name !== undefined) {
      const prev = names.get(r.name);
      if (prev !== undefined) throw new InputError(`${files.label}: ${key}.name: "${r.name}" is already used by runners[${prev}]`);
      names.set(r.name, i);
    }
    return {
      source: `${files.label}#${key}`,
      mode: r.mode ?? "direct",
      fresh: r.fresh ?? false,
      dockerHost: r.docker_host ?? defaultHost,
      ...(r.runner_config !== undefined ? { runnerConfig: files.mustExist(r.runner_config, `${key}.runner_config`) } : {}),
      ...(r.name !== undefined ? { name: r.name } : {}),
      // The runner user's config.json may legitimately be absent (no login yet): that is a probe result, not a config error.
      ...(r.docker_config !== undefined ? { dockerConfig: files.path(r.docker_config) } : {}),
      ...(r.docker_auth_config_file !== undefined
        ? { dockerAuthConfigFile: files.mustExist(r.docker_auth_config_file, `${key}.docker_auth_config_file`) }
        : {}),
      ...(r.tls_cert_path !== undefined ? { tlsCertPath: files.mustExist(r.tls_cert_path, `${key}.tls_cert_path`) } : {}),
      ...(r.images !== undefined ? { images: r.images } : {}),
      ...(r.interval !== undefined ? { intervalMs: r.interval } : {}),
      ...(r.timeout !== undefined ? { timeoutMs: r.timeout } : {}),
      ...(r.full_pull_interval !== undefined ? { fullPullIntervalMs: r.full_pull_interval } : {}),
    };
  });
}

function resolveCanary(raw: RawConfig["canary"], files: ConfigFiles): Config["canary"] {
  const canary: Config["canary"] = {};
  const l = raw?.local;
  if (l) {
    canary.local = {
      image: l.image,
      command: l.command ?? ["sh", "-c", "echo ci-prober canary ok"],
      network: l.network ?? "none",
      ...(l.expect_output !== undefined ? { expectOutput: l.expect_output } : {}),
      ...(l.interval !== undefined ? { intervalMs: l.interval } : {}),
      ...(l.timeout !== undefined ? { timeoutMs: l.timeout } : {}),
      ...(l.runners !== undefined ? { runners: l.runners } : {}),
    };
  }
  const g = raw?.gitlab;
  if (g) {
    canary.gitlab = {
      url: g.url.replace(/\/+$/, ""),
      project: String(g.project),
      ref: g.ref,
      variables: g.variables ?? {},
      intervalMs: g.interval ?? 15 * 60_000,
      timeoutMs: g.timeout ?? 10 * 60_000,
      ...(g.schedule !== undefined ? { schedule: g.schedule } : {}),
      ...(g.token_file !== undefined ? { token: files.secret(g.token_file, "canary.gitlab.token_file") } : {}),
      ...(g.token !== undefined ? { token: new Secret(g.token) } : {}),
      ...(g.trigger_token_file !== undefined
        ? { triggerToken: files.secret(g.trigger_token_file, "canary.gitlab.trigger_token_file") }
        : {}),
      ...(g.ca_file !== undefined ? { ca: files.text(g.ca_file, "canary.gitlab.ca_file") } : {}),
    };
  }
  return canary;
}

function resolveGitlab(g: NonNullable<RawConfig["gitlab"]>, files: ConfigFiles): GitlabConfig {
  return {
    url: g.url.replace(/\/+$/, ""),
    intervalMs: g.interval ?? 5 * 60_000,
    requestsPerMinute: g.requests_per_minute ?? 60,
    ...(g.token_file !== undefined ? { token: files.secret(g.token_file, "gitlab.token_file") } : {}),
    ...(g.token !== undefined ? { token: new Secret(g.token) } : {}),
    ...(g.ca_file !== undefined ? { ca: files.text(g.ca_file, "gitlab.ca_file") } : {}),
    ...(g.registry !== undefined ? { registry: normalizeRegistry(g.registry) } : {}),
    ...(g.variables === true || Array.isArray(g.variables) ? { variables: g.variables } : {}),
  };
}

function resolveRegistries(raw: NonNullable<RawConfig["registries"]>, files: ConfigFiles): Record<string, RegistryTransport> {
  const registries: Record<string, RegistryTransport> = {};
  for (const [host, t] of Object.entries(raw)) {
    const key = `registries["${host}"]`;
    registries[normalizeRegistry(host)] = {
      insecure: t.insecure ?? false,
      ...(t.ca_file !== undefined ? { caFile: files.path(t.ca_file), ca: files.text(t.ca_file, `${key}.ca_file`) } : {}),
      ...(t.platform !== undefined ? { platform: t.platform } : {}),
      ...(t.full_pull_interval !== undefined ? { fullPullIntervalMs: t.full_pull_interval } : {}),
    };
  }
  return registries;
}
