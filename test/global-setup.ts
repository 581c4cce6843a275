import { spawnSync } from "node:child_process";
import type { TestProject } from "vitest/node";
import { startServices, type ServicesInfo } from "./services/index.js";

declare module "vitest" {
  export interface ProvidedContext {
    services: ServicesInfo;
  }
}

/** Starts the real services once for the whole run; every test file reads them with inject("services"). */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // CLI tests run the built dist/ as a user would; build it (scripts/test.sh already did, this keeps `npx vitest` honest).
  spawnSync("npx", ["tsc", "-p", "tsconfig.json"], { stdio: "ignore" });
  const services = await startServices();
  project.provide("services", services.info);
  return () => services.stop();
}
