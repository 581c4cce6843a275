import type { ProbeKind } from "./types.js";

/** Every kind of scheduled task: the probe kinds of src/probes/index.ts, the crawl of GitLab-held credentials and the re-plan. */
export type TaskKind =
  | "login"
  | "pull"
  | "local_canary"
  | "gitlab_canary"
  | "credential_check"
  | "certificate_check"
  | "gitlab_variables"
  | "replan";

/**
 * The identity of one task across re-plans (cloudprober's Endpoint.Key()): the
 * scheduler's loops, the metric series a task wrote and its /status history are
 * all found by it. `runner` is "" for tasks of no runner (a registry's
 * certificate, the re-plan); `target` is a registry, an image, `local` or a project.
 */
export interface TaskKey {
  readonly kind: TaskKind;
  readonly runner: string;
  readonly target: string;
}

export function taskKey(kind: TaskKind, runner: string, target: string): TaskKey {
  return Object.freeze({ kind, runner, target });
}

export function sameKey(a: TaskKey, b: TaskKey): boolean {
  return a.kind === b.kind && a.runner === b.runner && a.target === b.target;
}

/** The `probe` label of a task's results: the canary kinds share "canary" (SPEC.md, Metrics). */
export function probeLabel(kind: TaskKind): ProbeKind | undefined {
  switch (kind) {
    case "login":
    case "pull":
      return kind;
    case "local_canary":
    case "gitlab_canary":
      return "canary";
    default:
      return undefined;
  }
}

/** How a key reads in /status and in logs: `login|runner-a|registry.example.jp`. */
export function keyText(key: TaskKey): string {
  return [probeLabel(key.kind) ?? key.kind, key.runner, key.target].filter((part) => part !== "").join("|");
}

/** A Map keyed by TaskKey value, not by object identity. */
export class KeyMap<V> {
  // NUL cannot occur in a runner name, registry or image: the joined id is unambiguous, and it is never parsed.
  readonly #map = new Map<string, { key: TaskKey; value: V }>();

  get size(): number {
    return this.#map.size;
  }

  get(key: TaskKey): V | undefined {
    return this.#map.get(id(key))?.value;
  }

  has(key: TaskKey): boolean {
    return this.#map.has(id(key));
  }

  set(key: TaskKey, value: V): this {
    this.#map.set(id(key), { key, value });
    return this;
  }

  delete(key: TaskKey): boolean {
    return this.#map.delete(id(key));
  }

  clear(): void {
    this.#map.clear();
  }

  keys(): TaskKey[] {
    return [...this.#map.values()].map((e) => e.key);
  }

  values(): V[] {
    return [...this.#map.values()].map((e) => e.value);
  }

  entries(): [TaskKey, V][] {
    return [...this.#map.values()].map((e) => [e.key, e.value]);
  }
}

/** A set of TaskKeys by value. */
export class KeySet {
  readonly #map = new KeyMap<true>();

  constructor(keys: Iterable<TaskKey> = []) {
    for (const k of keys) this.add(k);
  }

  get size(): number {
    return this.#map.size;
  }

  add(key: TaskKey): this {
    this.#map.set(key, true);
    return this;
  }

  has(key: TaskKey): boolean {
    return this.#map.has(key);
  }

  delete(key: TaskKey): boolean {
    return this.#map.delete(key);
  }

  keys(): TaskKey[] {
    return this.#map.keys();
  }
}

function id(key: TaskKey): string {
  return `${key.kind}\u0000${key.runner}\u0000${key.target}`;
}
