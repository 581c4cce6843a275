import { mkdirSync, writeFileSync } from "node:fs";
import { createServer, connect, type Server } from "node:net";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { Config, RunnerSpec } from "../src/config/resolve.js";
import { withDeadline } from "../src/deadline.js";
import { silentLogger } from "../src/log.js";
import { plan } from "../src/plan.js";
import { NoHarm } from "../src/probes/guard.js";
import { Scheduler } from "../src/scheduler.js";
import type { ProbeResult } from "../src/types.js";
import { testConfig } from "../test/helpers/config.js";
import { startServices } from "../test/services/index.js";
import { type BenchReport, median, pushRandomImage } from "./lib.js";

/**
 * What one runner costs the registry per day (README, Doing no harm): one
 * runner's login and pull probes of a 64 MiB image on the token-auth
 * registry, counted at a TCP proxy in front of it (requests, and bytes both
 * ways, headers included) and at the token realm (/jwt/auth), round by round.
 * A day at the defaults (interval 1m, full_pull_interval 1h) is 24 rounds
 * with a full pull and 1,416 with a manifest HEAD; the peer is the old
 * behaviour, a full pull every round (full_pull_interval: 0s).
 */

const IMAGE_BYTES = 64 * 1024 * 1024;
const ROUNDS_PER_DAY = 1440;
const FULL_PER_DAY = 24;

interface Counter {
  host: string;
  requests: number;
  bytes: number;
  close(): Promise<void>;
}

/** A TCP proxy that counts bytes both ways and HTTP request lines client → server. */
async function countingProxy(upstream: string): Promise<Counter> {
  const [host, port] = upstream.split(":");
  const counter = { requests: 0, bytes: 0 };
  const server: Server = createServer((client) => {
    const up = connect(Number(port), host ?? "127.0.0.1");
    client.on("data", (chunk: Buffer) => {
      counter.bytes += chunk.length;
      counter.requests += (chunk.toString("latin1").match(/^(GET|HEAD|POST|PUT) \S+ HTTP\/1\.1\r$/gm) ?? []).length;
      up.write(chunk);
    });
    up.on("data", (chunk: Buffer) => {
      counter.bytes += chunk.length;
      client.write(chunk);
    });
    client.on("end", () => up.end());
    up.on("end", () => client.end());
    client.on("error", () => up.destroy());
    up.on("error", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port: bound } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${bound}`,
    get requests() {
      return counter.requests;
    },
    get bytes() {
      return counter.bytes;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

interface RoundCost {
  kind: string;
  requests: number;
  bytes: number;
  tokens: number;
  seconds: number;
}

export async function benchCost(): Promise<BenchReport> {
  const services = await startServices();
  const proxy = await countingProxy(services.info.token.host);
  try {
    const dir = join(services.info.tmp, "bench-cost");
    mkdirSync(dir, { recursive: true });
    const admin = services.info.gitlab.admin;
    await pushRandomImage(
      join(dir, "image"),
      `${services.info.token.host}/ci/cost:latest`,
      IMAGE_BYTES,
      `${admin.username}:${admin.password}`,
      120_000,
    );
    const user = services.gitlab.state.addUser({ username: "cost-runner-user", password: "cost-runner-pw-5b1e", actions: ["pull"] });
    const dockerConfig = join(dir, "config.json");
    const auth = Buffer.from(`${user.username}:${user.password}`).toString("base64");
    writeFileSync(dockerConfig, JSON.stringify({ auths: { [proxy.host]: { auth } } }));
    const image = `${proxy.host}/ci/cost:latest`;
    const tokens = () => services.gitlab.state.requests.filter((r) => r.path === "/jwt/auth").length;

    const roundOf = async (config: Config, harm: NoHarm): Promise<RoundCost> => {
      const [r0, b0, t0, s0] = [proxy.requests, proxy.bytes, tokens(), performance.now()];
      const results: ProbeResult[] = [];
      await withDeadline(120_000, undefined, async (signal) => {
        const p = await plan({
          config,
          logger: silentLogger,
          sink: { probe: (_k, r) => results.push(r), checks: () => undefined, cert: () => undefined },
          signal,
          harm,
        });
        await new Scheduler({ concurrency: 4, logger: silentLogger }).runOnce(p.tasks);
      });
      const failed = results.find((r) => !r.success);
      if (failed) throw new Error(`${failed.probe} failed: ${failed.reason}: ${failed.error}`);
      const kind = results.find((r) => r.probe === "pull")?.pull ?? "?";
      return {
        kind,
        requests: proxy.requests - r0,
        bytes: proxy.bytes - b0,
        tokens: tokens() - t0,
        seconds: (performance.now() - s0) / 1000,
      };
    };
    const runner: RunnerSpec = { source: "bench#runners[0]", name: "cost-runner", dockerConfig, mode: "direct", fresh: false };
    const config = (extra: Partial<Config>): Config =>
      testConfig({ file: "bench", timeoutMs: 60_000, concurrency: 4, images: [image], logLevel: "warn", runners: [runner], ...extra });

    const defaults = new NoHarm({});
    const full = await roundOf(config({}), defaults);
    const heads: RoundCost[] = [];
    for (let i = 0; i < 5; i++) heads.push(await roundOf(config({}), defaults));
    const peer = new NoHarm({});
    const peers: RoundCost[] = [];
    for (let i = 0; i < 3; i++) peers.push(await roundOf(config({ fullPullIntervalMs: 0 }), peer));

    const head = heads[heads.length - 1] ?? full;
    const peerRound = peers[peers.length - 1] ?? full;
    const day = (f: RoundCost, h: RoundCost, fulls: number) => ({
      requests: fulls * f.requests + (ROUNDS_PER_DAY - fulls) * h.requests,
      bytes: fulls * f.bytes + (ROUNDS_PER_DAY - fulls) * h.bytes,
      tokens: fulls * f.tokens + (ROUNDS_PER_DAY - fulls) * h.tokens,
    });
    const ours = day(full, head, FULL_PER_DAY);
    const old = day(peerRound, peerRound, ROUNDS_PER_DAY);
    const hub = day(head, head, 0);
    const mb = (b: number) => `${(b / 1e6).toFixed(b < 1e7 ? 2 : 0)} MB`;
    const headSeconds = median(heads.map((h) => h.seconds));
    const fullSeconds = median(peers.map((p) => p.seconds));
    return {
      name: `cost: one runner, login + pull of a ${IMAGE_BYTES / 1024 / 1024} MiB image, per round and per day`,
      rows: [
        { tool: "ci-prober, a manifest round (login + HEAD)", medianSeconds: headSeconds, ratio: headSeconds / fullSeconds },
        { tool: "peer: a full-pull round (login + every blob)", medianSeconds: fullSeconds },
      ],
      notes: [
        `full round: ${full.requests} registry requests, ${mb(full.bytes)}, ${full.tokens} /jwt/auth; manifest round: ${head.requests} requests, ${head.bytes} bytes, ${head.tokens} /jwt/auth`,
        `per day at the defaults (1m, full pull hourly): ${ours.requests} requests, ${mb(ours.bytes)}, ${ours.tokens} /jwt/auth`,
        `per day with a full pull every round (0s, the old behaviour): ${old.requests} requests, ${mb(old.bytes)}, ${old.tokens} /jwt/auth`,
        `per day for a Docker Hub image (manifest checks only): ${hub.requests} requests, ${mb(hub.bytes)}, 0 manifest GETs (pull quota)`,
        `bytes ratio defaults / every round: ${(ours.bytes / old.bytes).toFixed(4)}x; requests ratio: ${(ours.requests / old.requests).toFixed(2)}x`,
      ],
    };
  } finally {
    await proxy.close();
    await services.stop();
  }
}
