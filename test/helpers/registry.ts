import type { Config } from "../../src/config/resolve.js";
import { normalizeRegistry, parseImageRef } from "../../src/image.js";
import type { RegistrySettings } from "../../src/probes/direct.js";
import { registrySettings } from "../../src/probes/index.js";
import { ProbeLog, type ProbeContext } from "../../src/probes/types.js";
import { silentLogger } from "../../src/log.js";
import { Secret } from "../../src/secret.js";
import { testConfig } from "./config.js";
import type { Credential, Runner } from "../../src/types.js";

export const RUNNER: Runner = {
  name: "runner-a",
  mode: "direct",
  source: "test#runners[0]",
  dockerHost: "unix:///nonexistent.sock",
  images: [],
};

export function passwordCredential(
  registry: string,
  username: string,
  password: string,
  secretType: Credential["secretType"] = "password",
): Credential {
  return {
    runner: RUNNER.name,
    registry,
    username,
    secretType,
    kind: "unknown",
    source: `/home/gitlab-runner/.docker/config.json#auths["${registry}"]`,
    secret: new Secret(password),
  };
}

export interface ContextSpec {
  target: string;
  credential?: Credential;
  config?: Config;
  timeoutMs?: number;
}

/** A probe context as the scheduler builds one, with a credential fixed by the test. */
export function probeContext(spec: ContextSpec): ProbeContext<RegistrySettings> {
  const config = spec.config ?? testConfig();
  // A login's target is a registry, a pull's an image: the settings are those of the registry it talks to.
  const registry = spec.target.includes("/") ? parseImageRef(spec.target).registry : normalizeRegistry(spec.target);
  return {
    settings: registrySettings(config, registry),
    runner: RUNNER,
    target: spec.target,
    signal: AbortSignal.timeout(spec.timeoutMs ?? config.timeoutMs),
    log: new ProbeLog(),
    logger: silentLogger,
    credentialFor: async (target) => (spec.credential?.registry === normalizeRegistry(target) ? spec.credential : undefined),
  };
}
