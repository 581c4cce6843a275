import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, inject, test } from "vitest";
import { freePort } from "../../services/procs.js";
import { startDaemonProc, waitFor, type DaemonProc } from "../../helpers/daemon.js";
import { createGitlabUser, setGitlabUserState, tempDir, writeDockerConfig } from "../../helpers/fixtures.js";
import { select } from "../../helpers/metrics.js";

// Ten runners hold one credential whose GitLab account was blocked (the
// incident of ../shared/seeds/), against the real token-auth registry whose
// realm is the fake GitLab's /jwt/auth. GitLab bans an IP after 30 failed
// authentications in 3 minutes; ci-prober's budget is 10 per registry per 3
// minutes. Time runs 20× fast here: interval 1m → 3s, the 10m backoff cap →
// 30s, the 3m window → 9s.

const services = inject("services");
const SCALE = 20;
const INTERVAL_MS = 60_000 / SCALE;
const CAP_MS = (10 * 60_000) / SCALE;
const WINDOW_MS = (3 * 60_000) / SCALE;
const RUNNERS = Array.from({ length: 10 }, (_, i) => `runner-${i}`);
const registry = services.token.host;

let daemon: DaemonProc;
let dockerConfig: string;
let departed: { username: string; password: string };

async function deniedAt(username: string): Promise<number[]> {
  const res = await fetch(`${services.gitlab.url}/-/test/log?event=jwt_denied`, { signal: AbortSignal.timeout(5000) });
  return ((await res.json()) as { at: number; username: string }[]).filter((e) => e.username === username).map((e) => e.at);
}

async function logins(): Promise<number[]> {
  const m = await daemon.metrics();
  return RUNNERS.map((runner) => select(m, "ci_prober_login_success", { runner, registry })[0]?.value ?? Number.NaN);
}

beforeAll(async () => {
  const dir = tempDir("auth-backoff");
  departed = await createGitlabUser(services.gitlab.url, { username: `departed-${Date.now()}` });
  await setGitlabUserState(services.gitlab.url, departed.username, "ldap_blocked");
  dockerConfig = writeDockerConfig(join(dir, ".docker"), { [registry]: departed });
  const port = await freePort();
  const file = join(dir, "ci-prober.yml");
  writeFileSync(
    file,
    [
      `interval: ${INTERVAL_MS}ms`,
      "timeout: 5s",
      `listen_address: 127.0.0.1:${port}`,
      `images: ["${services.token.image}"]`,
      `auth_backoff: {max_pause: ${CAP_MS}ms, max_failures: 10, window: ${WINDOW_MS}ms}`,
      "runners:",
      ...RUNNERS.map((name) => `  - {name: ${name}, docker_config: ${dockerConfig}, mode: direct}`),
      "",
    ].join("\n"),
  );
  daemon = await startDaemonProc(file, port);
  await waitFor("ready", 20_000, async () => ((await daemon.get("/-/ready")).status === 200 ? true : undefined));
});

afterAll(async () => {
  await daemon?.stop();
});

test("ten runners sharing a blocked account's credential: failed /jwt/auth requests stay within 10 per scaled 3 minutes, the gauges read 0 and keep running", async () => {
  const start = Date.now();
  // Two scaled 3-minute windows.
  await new Promise((r) => setTimeout(r, 2 * WINDOW_MS));
  const denied = await deniedAt(departed.username);
  for (const at of denied) expect(denied.filter((t) => t > at - WINDOW_MS && t <= at).length).toBeLessThanOrEqual(10);
  // Without the backoff: 10 runners × (login + pull) × 6 rounds = 120. Once refused, one try per pause.
  expect(denied.length).toBeGreaterThanOrEqual(2);
  expect(denied.length).toBeLessThanOrEqual(8);

  const m = await daemon.metrics();
  expect(await logins()).toEqual(Array(10).fill(0));
  for (const runner of RUNNERS) {
    // Still recorded every interval while held: CIProberStale has nothing to fire on.
    const last = select(m, "ci_prober_probe_last_run_timestamp_seconds", { probe: "login", runner, target: registry })[0]?.value ?? 0;
    expect(Date.now() / 1000 - last).toBeLessThan((2 * INTERVAL_MS + 2000) / 1000);
    expect(
      select(m, "ci_prober_probe_failures_total", { probe: "login", runner, target: registry, reason: "unauthorized" })[0]?.value,
    ).toBeGreaterThanOrEqual(1);
  }
  const status = JSON.parse((await daemon.get("/status")).body) as {
    probes: { key: string; last: { error: string; backoff?: { failures: number } } }[];
  };
  const held = status.probes.filter((p) => p.key.startsWith("login|") && p.last.backoff !== undefined);
  expect(held.length).toBeGreaterThan(0);
  expect(held[0]?.last.error).toMatch(
    new RegExp(
      `^backing off, next attempt at \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z \\(${registry.replace(/\./g, "\\.")} refused this credential \\d+ times? in a row: .*HTTP Basic: Access denied`,
    ),
  );
  expect(Date.now() - start).toBeGreaterThanOrEqual(2 * WINDOW_MS);
});

test("a different secret in the file is tried at once: login back to 1 on every runner at the next round", async () => {
  const fixed = await createGitlabUser(services.gitlab.url, { username: `deploy-${Date.now()}` });
  writeDockerConfig(join(dockerConfig, "..", ""), { [registry]: fixed });
  const fixedAt = Date.now();
  await waitFor("every login at 1", 4 * INTERVAL_MS, async () => ((await logins()).every((v) => v === 1) ? true : undefined));
  expect(Date.now() - fixedAt).toBeLessThanOrEqual(2 * INTERVAL_MS + 1500);
});

test("the same blocked secret back in the file, its account re-activated: login is 1 again within the backoff cap", async () => {
  writeDockerConfig(join(dockerConfig, "..", ""), { [registry]: departed });
  await waitFor("logins at 0 again", 4 * INTERVAL_MS, async () => ((await logins()).every((v) => v === 0) ? true : undefined));
  await setGitlabUserState(services.gitlab.url, departed.username, "active");
  const activeAt = Date.now();
  await waitFor("every login at 1", CAP_MS + 4 * INTERVAL_MS, async () => ((await logins()).every((v) => v === 1) ? true : undefined));
  expect(Date.now() - activeAt).toBeLessThanOrEqual(CAP_MS + 2 * INTERVAL_MS);
});

test("no password or auth value reaches /metrics, /status or the log", async () => {
  const bodies = [(await daemon.get("/metrics")).body, (await daemon.get("/status")).body, daemon.log()];
  for (const secret of [departed.password, Buffer.from(`${departed.username}:${departed.password}`).toString("base64")]) {
    for (const body of bodies) expect(body.includes(secret)).toBe(false);
  }
});
