import type { Registry } from "prom-client";

/** The methods by which a prom-client metric changes. */
const MUTATORS = ["set", "inc", "dec", "observe", "remove", "reset", "zero"] as const;

/**
 * The registry's exposition text, rendered by prom-client again only when a
 * metric changed since the last scrape. Rendering 35,000 samples (1,000
 * runners) costs ~50-60 ms of CPU on an idle 2-core machine, several times that
 * under load; between rounds nothing changes and a scrape is served the text
 * already made. Changes are seen by wrapping each metric's mutating methods,
 * so a metric added to the registry later is covered once it is registered
 * before the first scrape (every metric of Metrics is a field, made first).
 */
export function cachedRender(registry: Registry): { text(): Promise<string> } {
  let version = 0;
  let wrapped = 0;
  let rendered: { version: number; text: Promise<string> } | undefined;
  const watch = () => {
    const metrics = registry.getMetricsAsArray();
    for (const metric of metrics.slice(wrapped)) {
      const target = metric as unknown as Record<string, unknown>;
      for (const name of MUTATORS) {
        const original = target[name];
        if (typeof original !== "function") continue;
        target[name] = function (this: unknown, ...args: unknown[]) {
          version++;
          return (original as (...a: unknown[]) => unknown).apply(this, args);
        };
      }
    }
    wrapped = metrics.length;
  };
  return {
    text() {
      if (registry.getMetricsAsArray().length !== wrapped) {
        watch();
        version++;
      }
      if (rendered?.version !== version) {
        const text = registry.metrics();
        rendered = { version, text };
        // A failed rendering is not kept: the next scrape renders again.
        text.catch(() => {
          if (rendered?.text === text) rendered = undefined;
        });
      }
      return rendered.text;
    },
  };
}
