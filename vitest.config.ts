import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    // Two cores: more workers only queue on the same dockerd and registries.
    maxWorkers: 2,
    projects: [
      // In process: no service and no child program (the CLI, promtool, systemd-analyze run under integration); seconds, not minutes.
      // Their waits are timers, not CPU: four workers on two cores finish sooner.
      // Projects with different maxWorkers must run as separate groups (vitest refuses otherwise): unit first.
      { extends: true, test: { name: "unit", include: ["test/unit/**/*.test.ts"], maxWorkers: 4, sequence: { groupOrder: 0 } } },
      // The real services (dockerd, registries, fake GitLab) are started once by the global setup.
      {
        extends: true,
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          globalSetup: ["test/global-setup.ts"],
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
