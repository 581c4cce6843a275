import type { BenchReport } from "./lib.js";

/**
 * npm run bench: every benchmark, each measuring ci-prober against a peer in
 * the same run (alternating runs, medians), printed as ratios.
 *   direct: a 256 MiB single-layer pull vs skopeo copy and curl | openssl dgst
 *   engine: engine-mode login + pull vs docker login + docker pull on the same daemon
 *   scale: 1,000 runners' round vs a bare Node loop sending the same requests; the daemon's /metrics, RSS, second round
 *   cost: what one runner costs the registry per round and per day, the defaults vs a full pull every round
 *   crawl: DOCKER_AUTH_CONFIG variables of 500 groups and 10,000 projects, requests and wall time with and without the API budget
 * `npm run bench -- direct` runs one of them.
 */
const BENCHES: Record<string, () => Promise<BenchReport>> = {
  direct: async () => (await import("./direct-pull.js")).benchDirectPull(),
  engine: async () => (await import("./engine.js")).benchEngine(),
  scale: async () => (await import("./scale.js")).benchScale(),
  cost: async () => (await import("./cost.js")).benchCost(),
  crawl: async () => (await import("./crawl.js")).benchCrawl(),
};

function print(report: BenchReport): void {
  process.stdout.write(`\n## ${report.name}\n`);
  const header = ["tool", "median", "ci-prober / tool", "peak RSS"];
  const rows = report.rows.map((r) => [
    r.tool,
    `${r.medianSeconds.toFixed(3)} s`,
    r.ratio !== undefined ? `${r.ratio.toFixed(2)}x` : "-",
    r.peakRssMb !== undefined ? `${r.peakRssMb.toFixed(0)} MB` : "-",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  for (const row of [header, ...rows]) process.stdout.write(`${row.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ")}\n`);
  for (const note of report.notes) process.stdout.write(`- ${note}\n`);
}

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  const names = wanted.length > 0 ? wanted : Object.keys(BENCHES);
  for (const name of names) {
    const bench = BENCHES[name];
    if (!bench) throw new Error(`unknown benchmark ${name}; have ${Object.keys(BENCHES).join(", ")}`);
    print(await bench());
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
