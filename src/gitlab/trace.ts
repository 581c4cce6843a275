import { scrub } from "../secret.js";

// ANSI CSI sequences (colours, erase-line) as GitLab Runner writes them into traces.
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;
// Collapsible-section markers: `section_start:1700000000:prepare_executor[collapsed=true]\r`.
const SECTION = /section_(?:start|end):\d+:[^\r\n]*\r/g;

/**
 * The patterns of a line that says why a job failed, as GitLab Runner and
 * the Docker daemon write them. Checked on each line in trace order: the first
 * line that matches any of them wins, because later lines repeat or summarise it.
 */
const EXPLAINS_FAILURE: readonly RegExp[] = [/^ERROR: /, /^WARNING: Failed to pull image/, /unauthorized: /i, /pull access denied/i];

const MAX_LINE = 1000;

/** A job trace as a reader sees it: ANSI codes and section markers removed, carriage-return overwrites applied. */
export function cleanTrace(trace: string): string[] {
  return trace
    .replace(SECTION, "")
    .replace(ANSI, "")
    .split("\n")
    .map((line) => {
      const text = line.replace(/\r+$/, "");
      // A terminal shows only what follows the last carriage return (progress bars rewrite their line).
      const cr = text.lastIndexOf("\r");
      return (cr >= 0 ? text.slice(cr + 1) : text).trimEnd();
    });
}

/** The first line of a trace that explains a failure, secrets scrubbed; undefined when none does. */
export function firstErrorLine(trace: string): string | undefined {
  for (const line of cleanTrace(trace)) {
    const text = line.trim();
    if (EXPLAINS_FAILURE.some((re) => re.test(text))) return scrub(text.length > MAX_LINE ? `${text.slice(0, MAX_LINE)}…` : text);
  }
  return undefined;
}
