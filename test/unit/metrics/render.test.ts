import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { describe, expect, test } from "vitest";
import { cachedRender } from "../../../src/metrics/render.js";

function counted(registry: Registry): { renders: () => number } {
  let n = 0;
  const original = registry.metrics.bind(registry);
  registry.metrics = () => {
    n++;
    return original();
  };
  return { renders: () => n };
}

describe("cachedRender", () => {
  test("renders once while nothing changes, and again after each change, with the new value", async () => {
    const registry = new Registry();
    const gauge = new Gauge({ name: "g", help: "h", labelNames: ["runner"], registers: [registry] });
    const hist = new Histogram({ name: "d", help: "h", labelNames: ["runner"], buckets: [1], registers: [registry] });
    const { renders } = counted(registry);
    const render = cachedRender(registry);
    gauge.set({ runner: "a" }, 1);
    const first = await render.text();
    expect(await render.text()).toBe(first);
    expect(renders()).toBe(1);
    gauge.set({ runner: "a" }, 2);
    expect(await render.text()).toContain('g{runner="a"} 2');
    hist.observe({ runner: "a" }, 0.5);
    expect(await render.text()).toContain('d_bucket{le="1",runner="a"} 1');
    gauge.remove({ runner: "a" });
    expect(await render.text()).not.toContain('g{runner="a"}');
    expect(renders()).toBe(4);
  });

  test("sees a metric registered after the first scrape, and its changes", async () => {
    const registry = new Registry();
    const render = cachedRender(registry);
    expect(await render.text()).toBe("\n");
    const counter = new Counter({ name: "c_total", help: "h", registers: [registry] });
    expect(await render.text()).toContain("c_total 0");
    counter.inc();
    expect(await render.text()).toContain("c_total 1");
  });
});
