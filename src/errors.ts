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

/** A file-system error as a short phrase: "no such file", "permission denied", … */
export function errnoText(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ENOENT") return "no such file";
  if (code === "EACCES") return "permission denied";
  if (code === "EISDIR") return "is a directory";
  return err instanceof Error ? err.message : String(err);
}
