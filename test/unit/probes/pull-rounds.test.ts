import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { deadline } from "../../../src/deadline.js";
import { silentLogger } from "../../../src/log.js";
import { plan } from "../../../src/plan.js";
import { NoHarm } from "../../../src/probes/guard.js";
import type { ProbeResult } from "../../../src/types.js";
import { startCountingRegistry, type CountingRegistry } from "../../helpers/counting-registry.js";
import { testConfig } from "../../helpers/config.js";
import { RUNNER } from "../../helpers/registry.js";
import { expectLogLine } from "../../helpers/log.js";

// Rounds of one runner's direct pull against a stand-in registry that counts
// manifest GETs, HEADs and blob bytes (SPEC.md, Probes → pull).

let registry: CountingRegistry;
const LAYER = 256 * 1024;

beforeAll(async () => {
  registry = await startCountingRegistry(LAYER);
});

afterAll(async () => {
  await registry.close();
});

async function rounds(
  n: number,
  fullPullIntervalMs: number | undefined,
  harm: NoHarm,
  between?: (round: number) => void,
): Promise<ProbeResult[]> {
  const runners = [{ source: RUNNER.source, name: RUNNER.name, mode: "direct" as const, images: [registry.image], fresh: false }];
  const config = testConfig({ runners, ...(fullPullIntervalMs !== undefined ? { fullPullIntervalMs } : {}) });
  const results: ProbeResult[] = [];
  const sink = { probe: (_key: unknown, r: ProbeResult) => results.push(r), checks: () => undefined, cert: () => undefined };
  const planned = deadline(10_000);
  const p = await plan({ config, logger: silentLogger, sink, signal: planned.signal, harm });
  planned.dispose();
  const task = p.tasks.find((t) => t.key.kind === "pull");
  if (!task) throw new Error("no pull task planned");
  for (let i = 0; i < n; i++) {
    between?.(i);
    const d = deadline(10_000);
    await task.run(d.signal);
    d.dispose();
  }
  return results;
}

function snapshot() {
  return { ...registry.counts };
}

describe("direct pull: manifest checks between full pulls", () => {
  test("over 10 rounds with full_pull_interval 1h: one full pull and 9 HEADs, blob bytes fetched once", async () => {
    const before = snapshot();
    const results = await rounds(10, 60 * 60_000, new NoHarm({}));
    const after = snapshot();
    expect(after.manifestGet - before.manifestGet).toBe(1);
    expect(after.manifestHead - before.manifestHead).toBe(9);
    expect(after.blobGets - before.blobGets).toBe(2);
    // One layer and one small config: the blob bytes of exactly one image.
    expect(after.blobBytes - before.blobBytes).toBeGreaterThan(LAYER);
    expect(after.blobBytes - before.blobBytes).toBeLessThan(LAYER + 1024);
    expect(results.map((r) => [r.success, r.pull])).toEqual([[true, "full"], ...Array(9).fill([true, "manifest"])]);
    expect(results[0]?.bytes).toBe(after.blobBytes - before.blobBytes);
    expect(results.slice(1).map((r) => r.bytes)).toEqual(Array(9).fill(0));
    expectLogLine(results[1]?.log, {
      endsWith: `manifest ${"application/vnd.docker.distribution.manifest.v2+json"} ${registry.digest()} (HEAD)`,
    });
    expectLogLine(results[1]?.log, { endsWith: "manifest check" });
  });

  test("a tag that moved to a new image brings a full pull in the round that sees it, then HEADs again", async () => {
    const before = snapshot();
    const results = await rounds(5, 60 * 60_000, new NoHarm({}), (i) => {
      if (i === 2) registry.retag();
    });
    const after = snapshot();
    expect(results.map((r) => r.pull)).toEqual(["full", "manifest", "full", "manifest", "manifest"]);
    // The round that saw the new digest made a HEAD, then the full pull's GET.
    expect(after.manifestHead - before.manifestHead).toBe(4);
    expect(after.manifestGet - before.manifestGet).toBe(2);
    expectLogLine(results[2]?.log, { endsWith: "digest changed: full pull" });
  });

  test("full_pull_interval 0s is a full pull every round", async () => {
    const before = snapshot();
    const results = await rounds(3, 0, new NoHarm({}));
    expect(results.map((r) => r.pull)).toEqual(["full", "full", "full"]);
    expect(registry.counts.manifestHead - before.manifestHead).toBe(0);
    expect(registry.counts.manifestGet - before.manifestGet).toBe(3);
  });

  test("the registry's ratelimit headers reach the rate-limit gauges' callback", async () => {
    const harm = new NoHarm({});
    const seen: string[] = [];
    harm.onRateLimit = (reg, rl) => seen.push(`${reg} ${rl.remaining} ${rl.limit}`);
    registry.rateLimit.remaining = 12;
    await rounds(1, undefined, harm);
    expect(seen.length).toBeGreaterThan(0);
    expect(new Set(seen)).toEqual(new Set([`${registry.host} 12 100`]));
  });
});
