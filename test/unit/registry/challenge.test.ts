import { describe, expect, test } from "vitest";
import { ProbeError } from "../../../src/reasons.js";
import { parseChallenges, parseScope, pickChallenge } from "../../../src/registry/challenge.js";

describe("parseChallenges", () => {
  test("reads a Bearer challenge with realm, service and a scope whose name holds host:port", () => {
    const header =
      'Bearer realm="https://gitlab.example.jp/jwt/auth",service="container_registry",scope="repository:127.0.0.1:5000/ci/app:pull"';
    expect(parseChallenges(header)).toEqual([
      {
        scheme: "bearer",
        params: {
          realm: "https://gitlab.example.jp/jwt/auth",
          service: "container_registry",
          scope: "repository:127.0.0.1:5000/ci/app:pull",
        },
      },
    ]);
  });

  test("unescapes quoted values and keeps commas and spaces inside quotes", () => {
    expect(parseChallenges('Basic realm="say \\"hi\\", a\\\\b", charset=UTF-8')).toEqual([
      { scheme: "basic", params: { realm: 'say "hi", a\\b', charset: "UTF-8" } },
    ]);
  });

  test("splits several challenges in one header and lower-cases schemes and parameter names", () => {
    expect(parseChallenges('Negotiate abc==, BASIC Realm="r1" , Bearer realm=https://t/auth,service=reg')).toEqual([
      { scheme: "negotiate", params: {} },
      { scheme: "basic", params: { realm: "r1" } },
      { scheme: "bearer", params: { realm: "https://t/auth", service: "reg" } },
    ]);
  });

  test("prefers Bearer over Basic, as Docker does", () => {
    expect(pickChallenge(parseChallenges('Basic realm="a", Bearer realm="b"'))?.scheme).toBe("bearer");
    expect(pickChallenge(parseChallenges("Negotiate abc=="))).toBeUndefined();
  });

  test("throws bad_response for an unterminated quoted value", () => {
    const err = (() => {
      try {
        parseChallenges('Bearer realm="https://t/auth');
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ProbeError);
    expect((err as ProbeError).reason).toBe("bad_response");
    expect((err as ProbeError).message).toBe('unparseable WWW-Authenticate header at character 13: "Bearer realm=\\"https://t/auth"');
  });

  test("throws bad_response for an empty header", () => {
    expect(() => parseChallenges("  ")).toThrow("unparseable WWW-Authenticate header at character 0");
  });
});

describe("parseScope", () => {
  test("splits from both ends so a registry host:port stays in the name", () => {
    expect(parseScope("repository:127.0.0.1:5000/ci/app:pull,push")).toEqual({
      type: "repository",
      name: "127.0.0.1:5000/ci/app",
      actions: ["pull", "push"],
    });
    expect(parseScope("registry:catalog:*")).toEqual({ type: "registry", name: "catalog", actions: ["*"] });
    expect(parseScope("nonsense")).toBeUndefined();
  });
});
