import { describe, expect, test } from "vitest";
import { parseImageRef } from "../../../src/image.js";
import { digestChanged, fullPullDue, fullPullIntervalFor, type PullState } from "../../../src/probes/pull-plan.js";
import { testConfig } from "../../helpers/config.js";

const H = 60 * 60_000;

/** The kinds of pull over `rounds` rounds a minute apart with an unchanging digest. */
function kinds(intervalMs: number | undefined, rounds: number): string[] {
  const state: PullState = {};
  const out: string[] = [];
  for (let i = 0; i < rounds; i++) {
    const now = i * 60_000;
    if (fullPullDue(state, intervalMs, now) || digestChanged(state, "sha256:aaa", intervalMs)) {
      state.lastFullAt = now;
      out.push("full");
    } else {
      out.push("manifest");
    }
    state.digest = "sha256:aaa";
  }
  return out;
}

describe("the pull plan", () => {
  test("a Docker Hub image gets manifest checks only, every round, unless full_pull_interval is set for it", () => {
    const config = testConfig({ fullPullIntervalMs: 30 * 60_000 });
    expect(fullPullIntervalFor(config, {}, "docker.io")).toBeUndefined();
    for (const image of [
      "busybox:1",
      "docker.io/library/busybox:1",
      "registry-1.docker.io/library/busybox:1",
      "index.docker.io/team/app",
    ]) {
      expect(fullPullIntervalFor(config, {}, parseImageRef(image).registry), image).toBeUndefined();
    }
    expect(kinds(fullPullIntervalFor(config, {}, "docker.io"), 5)).toEqual(["manifest", "manifest", "manifest", "manifest", "manifest"]);
    // A changed digest does not bring a full pull either.
    expect(digestChanged({ digest: "sha256:aaa" }, "sha256:bbb", undefined)).toBe(false);
    expect(fullPullIntervalFor(config, { fullPullIntervalMs: 6 * H }, "docker.io")).toBe(6 * H);
    const hub = testConfig({ registries: { "docker.io": { insecure: false, fullPullIntervalMs: 12 * H } } });
    expect(fullPullIntervalFor(hub, {}, "docker.io")).toBe(12 * H);
  });

  test("another registry gets a full pull every hour by default and a manifest check in between", () => {
    const interval = fullPullIntervalFor(testConfig(), {}, "registry.example.jp");
    expect(interval).toBe(H);
    const plan = kinds(interval, 121);
    expect(plan.filter((k) => k === "full")).toHaveLength(3);
    expect([plan[0], plan[60], plan[120]]).toEqual(["full", "full", "full"]);
    expect(plan.filter((k) => k === "manifest")).toHaveLength(118);
  });

  test("the runner's setting beats the registry's, which beats the top level's; 0s is a full pull every round", () => {
    const config = testConfig({
      fullPullIntervalMs: 2 * H,
      registries: { "registry.example.jp": { insecure: false, fullPullIntervalMs: 3 * H } },
    });
    expect(fullPullIntervalFor(config, {}, "other.example.jp")).toBe(2 * H);
    expect(fullPullIntervalFor(config, {}, "registry.example.jp")).toBe(3 * H);
    expect(fullPullIntervalFor(config, { fullPullIntervalMs: 0 }, "registry.example.jp")).toBe(0);
    expect(kinds(0, 3)).toEqual(["full", "full", "full"]);
  });

  test("a digest that moved after the last full pull brings a full pull at once", () => {
    expect(digestChanged({ lastFullAt: 0, digest: "sha256:aaa" }, "sha256:bbb", H)).toBe(true);
    expect(digestChanged({ lastFullAt: 0, digest: "sha256:aaa" }, "sha256:aaa", H)).toBe(false);
    expect(digestChanged({ lastFullAt: 0, digest: "sha256:aaa" }, undefined, H)).toBe(false);
  });
});
