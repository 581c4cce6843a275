import { scrub } from "./secret.js";

/**
 * Bad input: a config file, a Docker config.json, a config.toml. Its message
 * is one line that names the file (and key) and what was wrong; the command
 * line prints it without a stack and exits 2.
 */
export class InputError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(scrub(message.replace(/\s*\n\s*/g, " ")), options);
    this.name = "InputError";
  }
}

/** One line of text for any thrown value, secrets scrubbed. */
export function oneLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return scrub(text.replace(/\s*\n\s*/g, " ").trim());
}
