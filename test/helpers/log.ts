import { expect } from "vitest";

export type LineMatch = { endsWith: string; includes?: string } | { includes: string } | RegExp;

/**
 * A probe's step-by-step log (or a process log) holds a line that ends with,
 * contains, or matches the text (one line that both contains and ends with, when both are given);
 * on failure the message shows every line.
 */
export function expectLogLine(log: readonly string[] | undefined, match: LineMatch): void {
  expect(log ?? []).toContainEqual(expect.stringMatching(patternOf(match)));
}

function patternOf(match: LineMatch): RegExp {
  if (match instanceof RegExp) return match;
  const contains = match.includes === undefined ? "" : `(?=.*${escape(match.includes)})`;
  return "endsWith" in match ? new RegExp(`^${contains}.*${escape(match.endsWith)}$`) : new RegExp(contains);
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
