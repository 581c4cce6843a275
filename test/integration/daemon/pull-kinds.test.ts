import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { freePort } from "../../services/procs.js";
import { startDaemonProc, waitFor, type DaemonProc } from "../../helpers/daemon.js";
import { startCountingRegistry, type CountingRegistry } from "../../helpers/counting-registry.js";
import { tempDir } from "../../helpers/fixtures.js";
import { select, value } from "../../helpers/metrics.js";

// The daemon against a stand-in registry that sends Docker Hub's rate-limit
// headers: a full pull first, manifest HEADs after, said by pull_bytes and
// the log; the headers become the rate-limit gauges.

let registry: CountingRegistry;
let daemon: DaemonProc;

beforeAll(async () => {
  registry = await startCountingRegistry();
  const dir = tempDir("pull-kinds");
  const port = await freePort();
  const file = join(dir, "ci-prober.yml");
  writeFileSync(
    file,
    [
      `interval: 1s`,
      "timeout: 5s",
      `listen_address: 127.0.0.1:${port}`,
      `images: ["${registry.image}"]`,
      "runners:",
      "  - {name: solo, mode: direct}",
      "",
    ].join("\n"),
  );
  daemon = await startDaemonProc(file, port);
  await waitFor("ready", 15_000, async () => ((await daemon.get("/-/ready")).status === 200 ? true : undefined));
});

afterAll(async () => {
  await daemon?.stop();
  await registry?.close();
});

test("a full pull, then manifest HEADs: pull_bytes carries the kind, the log says it, the rate-limit gauges follow the headers", async () => {
  const image = registry.image;
  const m = await waitFor("a manifest check", 10_000, async () => {
    const now = await daemon.metrics();
    return select(now, "ci_prober_pull_bytes", { runner: "solo", image, pull: "manifest" }).length === 1 ? now : undefined;
  });
  expect(select(m, "ci_prober_pull_bytes", { runner: "solo", image }).map((s) => [s.labels.pull, s.value])).toEqual([["manifest", 0]]);
  expect(value(m, "ci_prober_pull_success", { runner: "solo", image })).toBe(1);
  expect(registry.counts.manifestGet).toBe(1);
  expect(registry.counts.manifestHead).toBeGreaterThanOrEqual(1);
  const lines = daemon
    .log()
    .split("\n")
    .filter((l) => l.includes('"msg":"probe succeeded"') && l.includes('"probe":"pull"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(lines[0]).toMatchObject({ pull: "full", runner: "solo", target: image });
  expect(lines[0]?.bytes).toBe(registry.counts.blobBytes);
  expect(lines[1]).toMatchObject({ pull: "manifest", bytes: 0 });
  expect(value(m, "ci_prober_registry_rate_limit_limit", { registry: registry.host })).toBe(100);
  expect(value(m, "ci_prober_registry_rate_limit_remaining", { registry: registry.host })).toBe(76);

  registry.rateLimit.remaining = 12;
  await waitFor("remaining 12", 5000, async () =>
    value(await daemon.metrics(), "ci_prober_registry_rate_limit_remaining", { registry: registry.host }) === 12 ? true : undefined,
  );
  const status = JSON.parse((await daemon.get("/status")).body) as { probes: { key: string; last: { pull?: string; bytes?: number } }[] };
  expect(status.probes.find((p) => p.key.startsWith("pull|solo|"))?.last).toMatchObject({ pull: "manifest", bytes: 0 });
});
