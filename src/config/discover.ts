import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { EMBEDDED_DEFAULT, resolveConfig, type Config } from "./resolve.js";
import type { RawConfig } from "./schema.js";

export interface ConfigSources {
  /** --config, when given. */
  flag?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** --config, then $CI_PROBER_CONFIG, then ./ci-prober.yml if present; undefined means the embedded default. */
export function resolveConfigPath({ flag, env = process.env, cwd = process.cwd() }: ConfigSources): string | undefined {
  if (flag !== undefined) return resolve(cwd, flag);
  const fromEnv = env.CI_PROBER_CONFIG;
  if (fromEnv !== undefined && fromEnv !== "") return resolve(cwd, fromEnv);
  const local = join(cwd, "ci-prober.yml");
  return existsSync(local) ? local : undefined;
}

/** The config that applies with no file: this host's runners, probed in direct mode (SPEC.md, Discovery). */
export function embeddedDefault(env: NodeJS.ProcessEnv = process.env, home: string = env.HOME ?? homedir()): Config {
  return resolveConfig(discoveredRaw(env, home), EMBEDDED_DEFAULT, env);
}

export function discoveredRaw(env: NodeJS.ProcessEnv, home: string): RawConfig {
  const dockerConfig = env.DOCKER_CONFIG ? join(env.DOCKER_CONFIG, "config.json") : join(home, ".docker", "config.json");
  const dockerHost = env.DOCKER_HOST && env.DOCKER_HOST !== "" ? env.DOCKER_HOST : "unix:///var/run/docker.sock";
  const tomls = ["/etc/gitlab-runner/config.toml", join(home, ".gitlab-runner", "config.toml")].filter((f) => existsSync(f));
  const runners: RawConfig["runners"] = tomls.map((runner_config) => ({
    runner_config,
    docker_host: dockerHost,
    mode: "direct" as const,
    ...(existsSync(dockerConfig) ? { docker_config: dockerConfig } : {}),
  }));
  if (runners.length === 0 && existsSync(dockerConfig)) {
    // No gitlab-runner here, but a Docker login: probe what this host's jobs would use.
    runners.push({ name: "local", docker_config: dockerConfig, docker_host: dockerHost, mode: "direct" });
  }
  return { runners };
}
