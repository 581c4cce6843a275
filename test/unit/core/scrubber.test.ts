import { describe, expect, test } from "vitest";
import { Scrubber } from "../../../src/secret.js";

describe("Scrubber", () => {
  test("removes each value, its base64 and its URL encoding, wherever they are in the line", () => {
    const s = new Scrubber();
    s.add("pw/with+chars");
    s.add("second-secret");
    const b64 = Buffer.from("pw/with+chars").toString("base64");
    expect(s.scrub(`a pw/with+chars b ${b64} c ${encodeURIComponent("pw/with+chars")}d second-secretsecond-secret`)).toBe(
      "a [redacted] b [redacted] c [redacted]d [redacted][redacted]",
    );
  });

  test("of two values with one beginning, the longer is removed whole", () => {
    const s = new Scrubber();
    s.add("abcd1234");
    s.add("abcd1234-longer");
    expect(s.scrub("x abcd1234-longer y abcd1234 z")).toBe("x [redacted] y [redacted] z");
  });

  test("a value holding another (an Authorization header holding its token) keeps its readable part", () => {
    const s = new Scrubber();
    s.add("tok-0123456789");
    s.add("Bearer tok-0123456789");
    expect(s.scrub("denied for Bearer tok-0123456789.")).toBe("denied for Bearer [redacted].");
  });

  test("gives back the same text when nothing matches, and ignores values under 4 characters", () => {
    const s = new Scrubber();
    s.add("abc");
    s.add("secret-value");
    expect(s.size).toBe(2);
    expect(s.scrub("abc ab secret-valu")).toBe("abc ab secret-valu");
  });

  test("costs what the text is long, not how many secrets there are: 10,000 lines against 8,000 strings in under a second", () => {
    const s = new Scrubber();
    for (let i = 0; i < 4000; i++) s.add(`runner-${i}-password-${(i * 7919).toString(36)}`);
    expect(s.size).toBe(8_000);
    const line = "+12ms GET http://127.0.0.1:5000/v2/ci/canary/blobs/sha256:0123456789abcdef0123456789abcdef -> 200 (redirected)";
    const t0 = performance.now();
    let same = 0;
    for (let i = 0; i < 10_000; i++) if (s.scrub(line) === line) same++;
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(same).toBe(10_000);
    expect(s.scrub(`x runner-3999-password-${(3999 * 7919).toString(36)} y`)).toBe("x [redacted] y");
  });
});
