import { pino, type Logger } from "pino";
import { scrub } from "./secret.js";

export type { Logger };

/**
 * The process logger: JSON lines on stderr. Every line passes through scrub()
 * on its way out, so a registered secret cannot reach the log even when it
 * hides inside an error message from a library.
 */
export function createLogger(
  level: string = process.env.CI_PROBER_LOG_LEVEL ?? "info",
  write: (line: string) => void = (line) => process.stderr.write(line),
): Logger {
  return pino(
    { level, base: null, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } },
    { write: (line: string) => write(scrub(line)) },
  );
}

/** A logger that drops everything, for code paths run without a daemon. */
export const silentLogger: Logger = pino({ level: "silent" });
