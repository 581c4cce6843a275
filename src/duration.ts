const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
  y: 31_536_000_000,
};

// Prometheus' own duration grammar: units in descending order, each at most once.
const DURATION = /^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$/;
const ORDER = ["y", "w", "d", "h", "m", "s", "ms"] as const;

/** Parse a Prometheus duration ("500ms", "30s", "1h30m") to milliseconds; undefined if it is not one. */
export function parseDuration(text: string): number | undefined {
  if (text === "" || text === "0") return text === "0" ? 0 : undefined;
  const match = DURATION.exec(text);
  if (!match) return undefined;
  let ms = 0;
  ORDER.forEach((unit, i) => {
    const n = match[i + 1];
    if (n !== undefined) ms += Number(n) * (UNIT_MS[unit] ?? 0);
  });
  return ms;
}

/** Format milliseconds the way Prometheus prints a duration. */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  let rest = ms;
  let out = "";
  for (const unit of ORDER) {
    const size = UNIT_MS[unit] ?? 1;
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}
