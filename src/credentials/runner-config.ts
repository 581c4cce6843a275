import { readFile } from "node:fs/promises";
import { parse, TomlError } from "smol-toml";
import type { Config, RunnerSpec } from "../config/resolve.js";
import { errnoText, InputError } from "../errors.js";
import { zodIssueText } from "../zod-text.js";
import type { Runner } from "../types.js";
import { runnerConfigSchema, type RunnerConfigEntry } from "./schema.js";

const DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock";

/**
 * Every runner of the config: each `[[runners]]` of each gitlab-runner
 * config.toml, and each runner written by hand. A config.toml that cannot be
 * read, or that gitlab-runner itself would reject (malformed TOML, a wrong type
 * for a key read here), gives one InputError and no runners; the other files'
 * runners still come back.
 *
 * GitLab Runner allows two [[runners]] with the same name (it is a description),
 * but ci-prober's metric labels must tell them apart: the first keeps its name,
 * later ones become `name#2`, `name#3`, … in config order, and Runner.source
 * still names the exact entry.
 */
export async function expandRunners(
  config: Config,
  opts: { signal?: AbortSignal } = {},
): Promise<{ runners: Runner[]; errors: InputError[] }> {
  const signal = opts.signal ?? new AbortController().signal;
  const runners: Runner[] = [];
  const errors: InputError[] = [];
  for (const spec of config.runners) {
    const { runners: found, errors: bad } =
      spec.runnerConfig !== undefined
        ? await fromRunnerConfig(spec, spec.runnerConfig, config, signal)
        : await fromHand(spec, config, signal);
    runners.push(...found);
    errors.push(...bad);
  }
  return { runners: uniqueNames(runners), errors };
}

type Expanded = { runners: Runner[]; errors: InputError[] };

async function fromRunnerConfig(spec: RunnerSpec, file: string, config: Config, signal: AbortSignal): Promise<Expanded> {
  let text: string;
  try {
    text = await readFile(file, { encoding: "utf8", signal });
  } catch (err) {
    signal.throwIfAborted();
    return { runners: [], errors: [new InputError(`${file}: cannot read: ${errnoText(err)}`)] };
  }
  let data: unknown;
  try {
    data = parse(text);
  } catch (err) {
    return { runners: [], errors: [new InputError(`${file}: ${tomlErrorText(err)}`)] };
  }
  const parsed = runnerConfigSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { runners: [], errors: [new InputError(`${file}: ${zodIssueText(issue, "not a gitlab-runner config")}`)] };
  }
  const entries = parsed.data.runners ?? [];
  const expanded = await Promise.all(entries.map((entry, i) => tomlRunner(spec, file, entry, i, config, signal)));
  return { runners: expanded.map((e) => e.runner), errors: expanded.flatMap((e) => e.errors) };
}

/** smol-toml's message carries a code excerpt over several lines; keep its first line with the position. */
function tomlErrorText(err: unknown): string {
  if (err instanceof TomlError) {
    const what = (err.message.split("\n")[0] ?? "").replace(/^Invalid TOML document: /, "");
    return `line ${err.line} column ${err.column}: invalid TOML: ${what}`;
  }
  return `invalid TOML: ${err instanceof Error ? (err.message.split("\n")[0] ?? "") : String(err)}`;
}

async function tomlRunner(
  spec: RunnerSpec,
  file: string,
  entry: RunnerConfigEntry,
  i: number,
  config: Config,
  signal: AbortSignal,
): Promise<{ runner: Runner; errors: InputError[] }> {
  const docker = entry.docker;
  const pullPolicy = docker?.pull_policy;
  const fromEnv = dockerAuthConfigFromEnvironment(entry.environment ?? [], `${file}#runners[${i}].environment.DOCKER_AUTH_CONFIG`);
  const byFile = fromEnv ? { errors: [] } : await readDockerAuthConfigFile(spec, signal);
  const dockerAuthConfig = fromEnv ?? byFile.dockerAuthConfig;
  const images = spec.images ?? (config.images.length > 0 ? config.images : docker?.image ? [docker.image] : []);
  const tlsCertPath = nonEmpty(docker?.tls_cert_path) ?? spec.tlsCertPath;
  const runner: Runner = {
    // An unnamed [[runners]] entry is still a runner; its position is the only stable name it has.
    name: nonEmpty(entry.name) ?? `runners[${i}]`,
    mode: spec.mode,
    source: `${file}#runners[${i}]`,
    dockerHost: nonEmpty(docker?.host) ?? spec.dockerHost ?? DEFAULT_DOCKER_HOST,
    images,
    ...(spec.dockerConfig !== undefined ? { dockerConfig: spec.dockerConfig } : {}),
    ...(dockerAuthConfig ? { dockerAuthConfig } : {}),
    ...(tlsCertPath !== undefined ? { tlsCertPath } : {}),
    ...(entry.executor !== undefined ? { executor: entry.executor } : {}),
    ...(pullPolicy !== undefined ? { pullPolicy: typeof pullPolicy === "string" ? [pullPolicy] : pullPolicy } : {}),
    ...schedule(spec),
  };
  return { runner, errors: byFile.errors };
}

async function fromHand(spec: RunnerSpec, config: Config, signal: AbortSignal): Promise<Expanded> {
  if (spec.name === undefined) return { runners: [], errors: [] };
  const { dockerAuthConfig, errors } = await readDockerAuthConfigFile(spec, signal);
  const runner: Runner = {
    name: spec.name,
    mode: spec.mode,
    source: spec.source,
    dockerHost: spec.dockerHost ?? DEFAULT_DOCKER_HOST,
    images: spec.images ?? config.images,
    ...(spec.dockerConfig !== undefined ? { dockerConfig: spec.dockerConfig } : {}),
    ...(dockerAuthConfig ? { dockerAuthConfig } : {}),
    ...(spec.tlsCertPath !== undefined ? { tlsCertPath: spec.tlsCertPath } : {}),
    ...schedule(spec),
  };
  return { runners: [runner], errors };
}

/** Per-runner settings of ci-prober.yml that ride along on every runner of an entry. */
function schedule(spec: RunnerSpec): Pick<Runner, "intervalMs" | "timeoutMs" | "fresh" | "fullPullIntervalMs"> {
  return {
    ...(spec.fullPullIntervalMs !== undefined ? { fullPullIntervalMs: spec.fullPullIntervalMs } : {}),
    ...(spec.intervalMs !== undefined ? { intervalMs: spec.intervalMs } : {}),
    ...(spec.timeoutMs !== undefined ? { timeoutMs: spec.timeoutMs } : {}),
    ...(spec.fresh ? { fresh: true } : {}),
  };
}

/**
 * `environment = ["DOCKER_AUTH_CONFIG={…}"]`: GitLab Runner adds these to every
 * job's variables, and a later entry of the same name overrides an earlier one.
 */
function dockerAuthConfigFromEnvironment(environment: string[], source: string): Runner["dockerAuthConfig"] {
  let value: string | undefined;
  for (const item of environment) {
    const eq = item.indexOf("=");
    if (eq > 0 && item.slice(0, eq) === "DOCKER_AUTH_CONFIG") value = item.slice(eq + 1);
  }
  return value === undefined ? undefined : { value, source };
}

/** docker_auth_config_file of ci-prober.yml: a file holding a DOCKER_AUTH_CONFIG value; its path is its source. */
async function readDockerAuthConfigFile(
  spec: RunnerSpec,
  signal: AbortSignal,
): Promise<{ dockerAuthConfig?: Runner["dockerAuthConfig"]; errors: InputError[] }> {
  const file = spec.dockerAuthConfigFile;
  if (file === undefined) return { errors: [] };
  try {
    return { dockerAuthConfig: { value: await readFile(file, { encoding: "utf8", signal }), source: file }, errors: [] };
  } catch (err) {
    signal.throwIfAborted();
    return { errors: [new InputError(`${spec.source}.docker_auth_config_file: cannot read ${file}: ${errnoText(err)}`)] };
  }
}

function uniqueNames(runners: Runner[]): Runner[] {
  const seen = new Map<string, number>();
  return runners.map((runner) => {
    const count = (seen.get(runner.name) ?? 0) + 1;
    seen.set(runner.name, count);
    return count === 1 ? runner : { ...runner, name: `${runner.name}#${count}` };
  });
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}
