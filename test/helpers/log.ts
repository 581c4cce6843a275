import { expect } from "vitest";

export type LineMatch = { endsWith: string } | { includes: string } | RegExp;

/**
 * A probe's step-by-step log (or a process log) holds a line that ends with,
 * contains, or matches the text; on failure the message shows every line.
 */
export function expectLogLine(log: readonly string[] | undefined, match: LineMatch): void {
  const pattern = match instanceof RegExp ? match : "endsWith" in match ? new RegExp(`${escape(match.endsWith)}$`) : new RegExp(escape(match.includes));
  expect(log ?? []).toContainEqual(expect.stringMatching(pattern));
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
