import { generateKeyPairSync } from "node:crypto";
import type { GitlabCanaryConfig } from "../../src/config/resolve.js";
import { createLogger } from "../../src/log.js";
import type { GitlabCanaryContext } from "../../src/probes/canary-gitlab.js";
import { gitlabCanaryRunner } from "../../src/probes/index.js";
import { ProbeLog } from "../../src/probes/types.js";
import { signingKey, type SigningKey } from "../fake-gitlab/jwt.js";

/** A throwaway RS256 key for a per-file fake GitLab. */
export function testSigningKey(): SigningKey {
  const { privateKey } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  return signingKey(privateKey);
}

/** A canary context against the fake, capturing the process log lines it writes. */
export function canaryContext(
  url: string,
  project: string,
  over: Partial<GitlabCanaryConfig> = {},
): { ctx: GitlabCanaryContext; logLines: string[]; cfg: GitlabCanaryConfig } {
  const cfg: GitlabCanaryConfig = { url, project, ref: "main", variables: {}, intervalMs: 60_000, timeoutMs: 20_000, ...over };
  const logLines: string[] = [];
  const ctx: GitlabCanaryContext = {
    settings: cfg,
    runner: gitlabCanaryRunner(cfg),
    target: project,
    // The scheduler's deadline is the canary timeout plus room to cancel.
    signal: AbortSignal.timeout(cfg.timeoutMs + 15_000),
    log: new ProbeLog(),
    logger: createLogger("debug", (line) => logLines.push(line)),
    credentialFor: async () => undefined,
    poll: { initialMs: 50, maxMs: 200 },
  };
  return { ctx, logLines, cfg };
}
