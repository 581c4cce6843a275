import { inspect } from "node:util";

const REDACTED = "[redacted]";

/**
 * A value that must never be printed. It prints as "[redacted]" through
 * String(), JSON.stringify() and util.inspect(); only reveal() gives the
 * value, and that is called at the moment it goes on the wire.
 */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
    registerSecret(value);
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }
}

// Every secret value the process has seen; scrub() removes them from any text
// that leaves the process (log lines, error messages, traces, /status).
const known = new Set<string>();

/** Remember a value (and its common encodings) so scrub() can remove it. */
export function registerSecret(value: string): void {
  // Short values would scrub ordinary words out of messages; real secrets are longer.
  if (value.length < 4) return;
  known.add(value);
  known.add(Buffer.from(value).toString("base64"));
  known.add(encodeURIComponent(value));
}

/** Replace every registered secret in text with "[redacted]". */
export function scrub(text: string): string {
  let out = text;
  for (const value of known) {
    if (out.includes(value)) out = out.split(value).join(REDACTED);
  }
  return out;
}
