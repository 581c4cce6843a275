import { describe, expect, test } from "vitest";
import { AuthBackoff, backoffKey, type Attempt, type Held } from "../../../src/probes/backoff.js";
import { Secret } from "../../../src/secret.js";

const REG = "registry.example.jp";
const MIN = 60_000;

function clock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

function signal(): AbortSignal {
  return new AbortController().signal;
}

async function attempt(b: AuthBackoff, key: string, intervalMs = MIN): Promise<Attempt | Held> {
  return b.enter(key, REG, intervalMs, signal());
}

function refused(a: Attempt | Held): void {
  if (a.kind !== "attempt") throw new Error("expected an attempt");
  a.done({ kind: "refused", reason: "unauthorized", error: "GET http://gitlab/jwt/auth: HTTP 401" });
}

describe("auth-failure backoff", () => {
  test("the key is a hash of registry, username and secret, and never contains the secret", () => {
    const key = backoffKey(REG, "t.yamada", new Secret("hunter2-very-secret"));
    expect(key).toMatch(/^[0-9a-f]{32}$/);
    expect(key).not.toContain("hunter2");
    expect(backoffKey(REG, "t.yamada", new Secret("another-secret"))).not.toBe(key);
    expect(backoffKey("other.example.jp", "t.yamada", new Secret("hunter2-very-secret"))).not.toBe(key);
  });

  test("a refused secret is held with a pause that doubles from the interval up to the cap", async () => {
    const c = clock();
    const b = new AuthBackoff({ capMs: 10 * MIN, maxFailures: 100, windowMs: 3 * MIN, now: c.now });
    const key = backoffKey(REG, "u", new Secret("s-1234"));
    const pauses: number[] = [];
    let last = c.now();
    refused(await attempt(b, key));
    for (let i = 0; i < 8; i++) {
      // Step minute by minute until the next try is allowed.
      for (;;) {
        c.advance(MIN);
        const a = await attempt(b, key);
        if (a.kind === "attempt") {
          pauses.push((c.now() - last) / MIN);
          last = c.now();
          refused(a);
          break;
        }
        expect(a).toMatchObject({ kind: "hold", reason: "unauthorized", error: "GET http://gitlab/jwt/auth: HTTP 401" });
      }
    }
    expect(pauses).toEqual([1, 2, 4, 8, 10, 10, 10, 10]);
  });

  test("ten probes of one refused secret at one moment: one tries, nine hold", async () => {
    const c = clock();
    const b = new AuthBackoff({ capMs: 10 * MIN, maxFailures: 10, windowMs: 3 * MIN, now: c.now });
    const key = backoffKey(REG, "u", new Secret("s-1234"));
    refused(await attempt(b, key));
    c.advance(MIN);
    const first = await attempt(b, key);
    expect(first.kind).toBe("attempt");
    const others = Promise.all(Array.from({ length: 9 }, () => attempt(b, key)));
    refused(first);
    const rest = await others;
    expect(rest.map((r) => r.kind)).toEqual(Array(9).fill("hold"));
    expect(rest[0]).toMatchObject({ failures: 2, nextAttemptAt: c.now() + 2 * MIN });
  });

  test("probes of an unknown secret wait for the first one's verdict instead of failing ten times", async () => {
    const b = new AuthBackoff({ capMs: 10 * MIN, maxFailures: 10, windowMs: 3 * MIN });
    const key = backoffKey(REG, "u", new Secret("s-1234"));
    const first = await attempt(b, key);
    const waiting = Promise.all(Array.from({ length: 9 }, () => attempt(b, key)));
    refused(first);
    expect((await waiting).map((r) => r.kind)).toEqual(Array(9).fill("hold"));
    expect(b.failuresIn(REG)).toBe(1);
  });

  test("an accepted secret runs freely for every probe", async () => {
    const b = new AuthBackoff({ capMs: 10 * MIN, maxFailures: 10, windowMs: 3 * MIN });
    const key = backoffKey(REG, "u", new Secret("s-1234"));
    const first = await attempt(b, key);
    if (first.kind !== "attempt") throw new Error("expected an attempt");
    first.done({ kind: "accepted" });
    const all = await Promise.all(Array.from({ length: 5 }, () => attempt(b, key)));
    expect(all.map((a) => a.kind)).toEqual(Array(5).fill("attempt"));
  });

  test("a different secret (the file was fixed) is tried at once while the old one backs off", async () => {
    const b = new AuthBackoff({ capMs: 10 * MIN, maxFailures: 10, windowMs: 3 * MIN });
    refused(await attempt(b, backoffKey(REG, "u", new Secret("old-secret"))));
    expect((await attempt(b, backoffKey(REG, "u", new Secret("old-secret")))).kind).toBe("hold");
    expect((await attempt(b, backoffKey(REG, "u", new Secret("new-secret")))).kind).toBe("attempt");
  });

  test("a secret accepted again after its pause (the account re-activated) runs freely again", async () => {
    const c = clock();
    const b = new AuthBackoff({ capMs: 10 * MIN, maxFailures: 10, windowMs: 3 * MIN, now: c.now });
    const key = backoffKey(REG, "u", new Secret("s-1234"));
    refused(await attempt(b, key));
    c.advance(MIN);
    const retry = await attempt(b, key);
    if (retry.kind !== "attempt") throw new Error("expected an attempt");
    retry.done({ kind: "accepted" });
    expect(b.held(key)).toBeUndefined();
    expect((await attempt(b, key)).kind).toBe("attempt");
  });

  test("failures of many secrets at one registry stay within max_failures per window", async () => {
    const c = clock();
    const b = new AuthBackoff({ capMs: 10 * MIN, maxFailures: 10, windowMs: 3 * MIN, now: c.now });
    const keys = Array.from({ length: 25 }, (_, i) => backoffKey(REG, `u${i}`, new Secret(`secret-${i}`)));
    // Every key refused once (new secrets are always tried), then retried each 10 s for 30 minutes.
    for (const k of keys) refused(await attempt(b, k));
    const failures: number[] = [];
    for (let t = 0; t < 30 * MIN; t += 10_000) {
      c.advance(10_000);
      for (const k of keys) {
        const a = await attempt(b, k, 10_000);
        if (a.kind === "attempt") {
          refused(a);
          failures.push(c.now());
        }
      }
    }
    for (const at of failures) expect(failures.filter((t) => t > at - 3 * MIN && t <= at).length).toBeLessThanOrEqual(10);
    expect(failures.length).toBeGreaterThan(50);
  });

  test("an inconclusive first contact leaves the secret unknown; memory stays bounded", async () => {
    const b = new AuthBackoff({ capMs: 10 * MIN, maxFailures: 10, windowMs: 3 * MIN, maxEntries: 50 });
    const key = backoffKey(REG, "u", new Secret("s-1234"));
    const a = await attempt(b, key);
    if (a.kind !== "attempt") throw new Error("expected an attempt");
    a.done({ kind: "inconclusive" });
    expect(b.size).toBe(0);
    for (let i = 0; i < 200; i++) refused(await attempt(b, backoffKey(REG, "u", new Secret(`secret-${i}`))));
    expect(b.size).toBe(50);
  });
});
