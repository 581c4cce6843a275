import type { Config } from "../../src/config/resolve.js";

/** The one resolved Config tests start from: a minute's interval, nothing to probe; a test overrides what it is about. */
export function testConfig(overrides: Partial<Config> = {}): Config {
  return {
    file: "test",
    intervalMs: 60_000,
    timeoutMs: 10_000,
    concurrency: 1,
    listenAddress: "127.0.0.1:0",
    images: [],
    platform: "linux/amd64",
    helperTimeoutMs: 5_000,
    logLevel: "info",
    runners: [],
    canary: {},
    registries: {},
    ...overrides,
  };
}
