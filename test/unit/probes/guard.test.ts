import { describe, expect, test } from "vitest";
import { deadline } from "../../../src/deadline.js";
import { silentLogger } from "../../../src/log.js";
import type { RegistrySettings } from "../../../src/probes/direct.js";
import { guardedProbe, NoHarm, type GuardedProbe } from "../../../src/probes/guard.js";
import { registrySettings } from "../../../src/probes/index.js";
import { ProbeLog, type ProbeContext } from "../../../src/probes/types.js";
import type { Credential, ProbeResult, Runner } from "../../../src/types.js";
import { testConfig } from "../../helpers/config.js";
import { passwordCredential, RUNNER } from "../../helpers/registry.js";

const REG = "registry.example.jp";
const config = testConfig();

function runner(name: string, mode: Runner["mode"] = "direct"): Runner {
  return { ...RUNNER, name, mode };
}

function credentialOf(r: Runner, password = "shared-secret-1234"): Credential {
  return {
    ...passwordCredential(REG, "deployer", password),
    runner: r.name,
    source: `/home/${r.name}/.docker/config.json#auths["${REG}"]`,
  };
}

type Body = (ctx: ProbeContext<RegistrySettings>) => Promise<Partial<ProbeResult>>;

function probe(r: Runner, body: Body, signal: AbortSignal, credential = credentialOf(r)): GuardedProbe<RegistrySettings> {
  return {
    config,
    runner: r,
    probe: "login",
    target: REG,
    intervalMs: 60_000,
    signal,
    context: (extra) => ({
      settings: registrySettings(config, REG),
      runner: r,
      target: REG,
      signal,
      log: new ProbeLog(),
      logger: silentLogger,
      credentialFor: async () => credential,
      ...extra,
    }),
    run: async (ctx) => ({
      probe: "login",
      runner: r.name,
      target: REG,
      success: true,
      durationSeconds: 0.01,
      startedAt: Date.now(),
      log: ["ran"],
      ...(await body(ctx)),
    }),
  };
}

const refused: Body = async (ctx) => {
  ctx.onCredentialRefused?.();
  return { success: false, reason: "unauthorized", error: "GET http://gitlab.example.jp/jwt/auth: HTTP 401" };
};

describe("the no-harm guard", () => {
  test("two direct runners with the same secret at the same moment: one request, both results, each with its own source", async () => {
    const harm = new NoHarm({});
    let runs = 0;
    const body: Body = async () => {
      runs++;
      await new Promise((r) => setTimeout(r, 20));
      return {};
    };
    const d = deadline(5000);
    const [a, b] = await Promise.all([
      guardedProbe(harm, probe(runner("a"), body, d.signal)),
      guardedProbe(harm, probe(runner("b"), body, d.signal)),
    ]);
    d.dispose();
    expect(runs).toBe(1);
    expect([a.runner, a.success, a.sharedWith]).toEqual(["a", true, undefined]);
    expect([b.runner, b.success, b.sharedWith]).toEqual(["b", true, "a"]);
    expect(a.credential?.source).toBe(`/home/a/.docker/config.json#auths["${REG}"]`);
    expect(b.credential?.source).toBe(`/home/b/.docker/config.json#auths["${REG}"]`);
    expect(b.log).toEqual(["+0ms same requests as runner a's login probe: its result is recorded here", "ran"]);
  });

  test("engine-mode probes are never merged, and different secrets are not either", async () => {
    const harm = new NoHarm({});
    let runs = 0;
    const body: Body = async () => {
      runs++;
      return {};
    };
    const d = deadline(5000);
    await Promise.all([
      guardedProbe(harm, probe(runner("a", "engine"), body, d.signal)),
      guardedProbe(harm, probe(runner("b", "engine"), body, d.signal)),
    ]);
    expect(runs).toBe(2);
    const c = runner("c");
    const e = runner("e");
    await Promise.all([
      guardedProbe(harm, probe(c, body, d.signal)),
      guardedProbe(harm, probe(e, body, d.signal, credentialOf(e, "another-secret-9876"))),
    ]);
    d.dispose();
    expect(runs).toBe(4);
  });

  test("after a refusal the next probe of that secret holds: 0, the held reason, and when the next attempt is", async () => {
    const harm = new NoHarm({});
    const d = deadline(5000);
    const first = await guardedProbe(harm, probe(runner("a"), refused, d.signal));
    expect(first.backoff).toBeUndefined();
    let ran = false;
    const body: Body = async () => {
      ran = true;
      return {};
    };
    const held = await guardedProbe(harm, probe(runner("a"), body, d.signal));
    d.dispose();
    expect(ran).toBe(false);
    expect(held).toMatchObject({ runner: "a", success: false, reason: "unauthorized", durationSeconds: 0, backoff: { failures: 1 } });
    expect(held.error).toMatch(
      new RegExp(
        `^backing off, next attempt at \\S+Z \\(${REG.replace(/\./g, "\\.")} refused this credential 1 time in a row: GET http://gitlab\\.example\\.jp/jwt/auth: HTTP 401\\)$`,
      ),
    );
    expect(held.backoff?.nextAttemptAt).toBeGreaterThanOrEqual(first.startedAt + 59_000);
    expect(held.credential?.source).toBe(`/home/a/.docker/config.json#auths["${REG}"]`);
  });

  test("in engine mode an unauthorized result backs the secret off too (the engine asked the registry)", async () => {
    const harm = new NoHarm({});
    const d = deadline(5000);
    await guardedProbe(
      harm,
      probe(runner("a", "engine"), async () => ({ success: false, reason: "unauthorized", error: "engine: unauthorized" }), d.signal),
    );
    const held = await guardedProbe(
      harm,
      probe(runner("b", "engine"), async () => ({}), d.signal),
    );
    d.dispose();
    expect(held.backoff?.failures).toBe(1);
  });

  test("a probe waiting for another runner's identical probe past its own deadline reports a timeout", async () => {
    const harm = new NoHarm({});
    const long = deadline(5000);
    const slow = guardedProbe(
      harm,
      probe(runner("a"), () => new Promise((r) => setTimeout(() => r({}), 300)), long.signal),
    );
    const short = deadline(50);
    const waiting = await guardedProbe(
      harm,
      probe(runner("b"), async () => ({}), short.signal),
    );
    expect([waiting.runner, waiting.success, waiting.reason]).toEqual(["b", false, "timeout"]);
    expect((await slow).success).toBe(true);
    long.dispose();
    short.dispose();
  });
});
