import type { Metrics } from "../../src/metrics/index.js";
import type { ProbeResult } from "../../src/types.js";
/** One sample of the Prometheus text format. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parse the Prometheus text exposition format (enough of it for tests: no timestamps, no exemplars). */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparseable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    const body = m[3] ?? "";
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g;
    for (let l = re.exec(body); l; l = re.exec(body)) {
      labels[l[1] ?? ""] = (l[2] ?? "").replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
    }
    out.push({ name: m[1] ?? "", labels, value: Number(m[4]) });
  }
  return out;
}

/** The samples of one metric whose labels include `match`. */
export function select(samples: Sample[], name: string, match: Record<string, string> = {}): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
}

/** The value of exactly one matching sample; throws when there are none or several. */
export function value(samples: Sample[], name: string, match: Record<string, string> = {}): number {
  const found = select(samples, name, match);
  if (found.length !== 1) throw new Error(`${found.length} samples of ${name}${JSON.stringify(match)}`);
  return found[0]?.value ?? NaN;
}

/**
 * SPEC.md's invariant of ci_prober_credential_info: for every (runner, registry
 * path) that has a series at all, exactly one is in_use="true". Throws naming
 * the pairs that break it; returns the samples for chaining.
 */
export function assertOneInUse(samples: Sample[]): Sample[] {
  const byPath = new Map<string, number>();
  for (const s of select(samples, "ci_prober_credential_info")) {
    const key = `${s.labels.runner ?? ""} ${s.labels.registry ?? ""}`;
    if (s.labels.registry === "*") continue;
    byPath.set(key, (byPath.get(key) ?? 0) + (s.labels.in_use === "true" ? 1 : 0));
  }
  const broken = [...byPath].filter(([, n]) => n !== 1).map(([k, n]) => `${k}: ${n} in use`);
  if (broken.length > 0)
    throw new Error(`ci_prober_credential_info must have exactly one in_use="true" per (runner, registry): ${broken.join("; ")}`);
  return samples;
}

/** One probe's result for metric tests: a successful login of r1 unless `over` says otherwise. */
export function probeResult(over: Partial<ProbeResult>): ProbeResult {
  return {
    probe: "login",
    runner: "r1",
    target: "registry.example.jp",
    success: true,
    durationSeconds: 0.2,
    startedAt: 1_800_000_000_000,
    log: [],
    ...over,
  };
}

/** The samples a Metrics instance exposes now. */
export async function metricSamples(m: Metrics): Promise<Sample[]> {
  return parseMetrics(await m.text());
}
