import { AsyncLocalStorage } from "node:async_hooks";
import { inspect } from "node:util";

const REDACTED = "[redacted]";

/**
 * A value that must never be printed. It prints as "[redacted]" through
 * String(), JSON.stringify() and util.inspect(); only reveal() gives the
 * value, and that is called at the moment it goes on the wire. Made, it is
 * registered with the scrubber of the scope it is made in (see withSecretScope).
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

/** A set of secret values, each with its common encodings, and the text scrubbing that removes them. */
export class Scrubber {
  readonly #values = new Set<string>();
  // Values by their first three characters: scrub() looks up each position of the
  // text once, so its cost follows the text's length, not the number of secrets (thousands at
  // 1,000 runners, and every probe log line is scrubbed).
  readonly #byPrefix = new Map<number, string[]>();
  // While there are only FEW values: all of them.
  readonly #few: string[] = [];

  add(value: string): void {
    // Short values would scrub ordinary words out of messages; real secrets are longer.
    if (value.length < PREFIX) return;
    for (const v of [value, Buffer.from(value).toString("base64"), encodeURIComponent(value)]) this.#index(v);
  }

  /** How many strings it removes (a value and its encodings count separately). */
  get size(): number {
    return this.#values.size;
  }

  scrub(text: string): string {
    if (this.#values.size === 0) return text;
    // A probe's own few secrets: one search for each tells at once whether there is anything to do.
    if (this.#values.size <= FEW && !this.#few.some((v) => text.includes(v))) return text;
    let out = "";
    let copied = 0;
    let i = 0;
    while (i <= text.length - PREFIX) {
      const hit = this.#hitAt(text, i);
      // A value holding another one ("Bearer <token>") gives way to it: the token goes, "Bearer " stays readable.
      if (hit === undefined || this.#holdsAnother(text, i, hit.length)) {
        i++;
        continue;
      }
      out += `${text.slice(copied, i)}${REDACTED}`;
      i += hit.length;
      copied = i;
    }
    return copied === 0 ? text : out + text.slice(copied);
  }

  /** The longest value at position i. */
  #hitAt(text: string, i: number): string | undefined {
    const candidates = this.#values.size <= FEW ? this.#few : this.#byPrefix.get(keyAt(text, i));
    let hit: string | undefined;
    for (const v of candidates ?? []) if ((hit === undefined || v.length > hit.length) && text.startsWith(v, i)) hit = v;
    return hit;
  }

  #holdsAnother(text: string, start: number, length: number): boolean {
    for (let j = start + 1; j <= start + length - PREFIX; j++) {
      const inner = this.#hitAt(text, j);
      if (inner !== undefined && j + inner.length <= start + length) return true;
    }
    return false;
  }

  #index(value: string): void {
    if (value.length < PREFIX || this.#values.has(value)) return;
    this.#values.add(value);
    const key = keyAt(value, 0);
    const list = this.#byPrefix.get(key);
    if (list) list.push(value);
    else this.#byPrefix.set(key, [value]);
    if (this.#values.size <= FEW) this.#few.push(value);
  }
}

/** The shortest value scrubbed. */
const PREFIX = 4;
/** Up to this many strings a scrubber searches for each in turn (a probe's scope); beyond, it indexes them. */
const FEW = 16;

/** The first three UTF-16 units at i as one number (48 bits): a Map key made without allocating a string. */
function keyAt(text: string, i: number): number {
  return text.charCodeAt(i) * 2 ** 32 + text.charCodeAt(i + 1) * 2 ** 16 + text.charCodeAt(i + 2);
}

/*
 * Lifetimes. A secret lives as long as what it came from:
 * - "config": ci-prober.yml's own secrets, made while resolving a config; kept while that config runs.
 * - "sources": the runners' credentials, made while a plan reads config.toml / config.json / helpers;
 *   kept while that plan is the daemon's.
 * Each slot keeps the newest two sets, so a probe of the previous plan (or config) still in flight
 * is scrubbed too. A probe's own tokens and headers live in the probe's scope and go when it ends.
 * Whatever is made outside any scope (a one-shot command, a test) stays for the process.
 */
export type SecretLifetime = "config" | "sources";

const KEPT_GENERATIONS = 2;
const longLived = new Map<SecretLifetime, Scrubber[]>();
const processWide = new Scrubber();

interface Scope {
  scrubber: Scrubber;
  parent: Scope | undefined;
}

// The scope a Secret made now belongs to: the probe (or plan, or config load) being run.
const current = new AsyncLocalStorage<Scope>();

/**
 * Run `work` with `scrubber` as the scope of the secrets it makes: they are
 * registered there, not globally, and scrub() inside the work (log lines,
 * errors, the probe log) removes them as well as every longer-lived one.
 */
export function withSecretScope<T>(scrubber: Scrubber, work: () => T): T {
  return current.run({ scrubber, parent: current.getStore() }, work);
}

/** Make `scrubber` the newest set of a lifetime; the set before it stays, older ones are forgotten. */
export function keepSecrets(lifetime: SecretLifetime, scrubber: Scrubber): void {
  const kept = [...(longLived.get(lifetime) ?? []), scrubber];
  longLived.set(lifetime, kept.slice(-KEPT_GENERATIONS));
}

/** Remember a value (and its common encodings) in the current scope, so scrub() can remove it. */
export function registerSecret(value: string): void {
  (current.getStore()?.scrubber ?? processWide).add(value);
}

/** How many strings every scrub() removes outside any probe: constant as the daemon ages. */
export function globalSecretCount(): number {
  let n = processWide.size;
  for (const kept of longLived.values()) for (const s of kept) n += s.size;
  return n;
}

/** Replace every secret known here (this scope and its parents, then the long-lived ones) with "[redacted]". */
export function scrub(text: string): string {
  let out = text;
  for (let scope = current.getStore(); scope !== undefined; scope = scope.parent) out = scope.scrubber.scrub(out);
  for (const kept of longLived.values()) for (const s of kept) out = s.scrub(out);
  return processWide.scrub(out);
}
