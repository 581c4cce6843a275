import { readFileSync } from "node:fs";

/** The package version, read once from package.json beside dist/ or src/. */
export const VERSION: string = readVersion();

function readVersion(): string {
  for (const rel of ["../../package.json", "../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "ci-prober" && pkg.version) return pkg.version;
    } catch {
      // try the next layout
    }
  }
  return "unknown";
}
