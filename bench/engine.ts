import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { checkLogin } from "../src/engine/auth.js";
import { engineFor } from "../src/engine/client.js";
import { pullImage } from "../src/engine/pull.js";
import { dockerCli, startServices, type ServicesInfo } from "../test/services/index.js";
import { maxRssMb, measure, median, type BenchReport, type Sample, assertOnceSucceeds } from "./lib.js";

const RUNS = 7;
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const MAIN = join(ROOT, "dist", "src", "main.js");
const PROCESS_TIMEOUT_MS = 60_000;

/**
 * Engine-mode login + pull of the same image: a whole `ci-prober once`
 * process against `docker login` + `docker pull` by the Debian docker CLI, on
 * the same test dockerd and token registry, alternating, RUNS runs each.
 */
export async function benchEngine(): Promise<BenchReport> {
  const services = await startServices();
  try {
    const { info } = services;
    const user = { username: "bench-engine", password: "bench-engine-pw-5c1e07" };
    const res = await fetch(`${info.gitlab.url}/-/test/users`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(user),
      signal: AbortSignal.timeout(10_000),
    });
    if (res.status !== 201) throw new Error(`creating the bench user: HTTP ${res.status}`);
    const dir = join(info.tmp, "bench-engine");
    const prober = await proberCommand(info, user, dir);
    const cli = cliCommands(info, user, dir);
    // One warm-up each: the daemon's first pull of the image fetches its layers, later ones only the manifest.
    await prober.run();
    await cli.run();
    const warm = await warmProbe(info, user);
    const ours: Sample[] = [];
    const theirs: Sample[] = [];
    const inProcess: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      ours.push(await prober.run());
      theirs.push(await cli.run());
      inProcess.push(await warm());
    }
    const oursMedian = median(ours.map((s) => s.seconds));
    const theirsMedian = median(theirs.map((s) => s.seconds));
    const warmMedian = median(inProcess);
    return {
      name: "engine login + pull",
      rows: [
        { tool: prober.label, medianSeconds: oursMedian, ratio: oursMedian / theirsMedian, peakRssMb: maxRssMb(ours) },
        { tool: "docker login + docker pull (/usr/bin/docker)", medianSeconds: theirsMedian, ratio: 1, peakRssMb: maxRssMb(theirs) },
        {
          tool: "ci-prober engine login + pull in a running process (daemon steady state)",
          medianSeconds: warmMedian,
          ratio: warmMedian / theirsMedian,
        },
      ],
      notes: [
        `${RUNS} runs each, alternating, after one warm-up each; image ${info.token.image} on the token registry (fake GitLab /jwt/auth), same dockerd`,
        "ratio = ci-prober median / docker CLI median; target at most 1.1",
        ...prober.notes,
      ],
    };
  } finally {
    await services.stop();
  }
}

/**
 * The same login + pull inside this process once dockerode is loaded: what a
 * round costs the `run` daemon, which pays start-up and the dockerode load once.
 */
async function warmProbe(info: ServicesInfo, user: { username: string; password: string }): Promise<() => Promise<number>> {
  const auth = { username: user.username, password: user.password, serveraddress: info.token.host };
  const docker = await engineFor({ dockerHost: info.dockerHost }, AbortSignal.timeout(PROCESS_TIMEOUT_MS));
  return async () => {
    const signal = AbortSignal.timeout(PROCESS_TIMEOUT_MS);
    const t0 = performance.now();
    await checkLogin(docker, info.dockerHost, auth, signal);
    await pullImage(docker, info.dockerHost, info.token.image, auth, { signal });
    return (performance.now() - t0) / 1000;
  };
}

interface Contender {
  label: string;
  notes: string[];
  run(): Promise<Sample>;
}

async function proberCommand(info: ServicesInfo, user: { username: string; password: string }, dir: string): Promise<Contender> {
  mkdirSync(dir, { recursive: true });
  const dockerConfig = join(dir, "runner-docker-config.json");
  const auth = Buffer.from(`${user.username}:${user.password}`).toString("base64");
  writeFileSync(dockerConfig, JSON.stringify({ auths: { [info.token.host]: { auth } } }), { mode: 0o600 });
  const config = join(dir, "ci-prober.yml");
  writeFileSync(
    config,
    [
      "timeout: 30s",
      "runners:",
      "  - name: bench",
      `    docker_config: ${dockerConfig}`,
      `    docker_host: ${info.dockerHost}`,
      "    mode: engine",
      `    images: [${info.token.image}]`,
      "",
    ].join("\n"),
  );
  await assertOnceSucceeds(MAIN, config, PROCESS_TIMEOUT_MS);
  return {
    label: "ci-prober once (engine mode)",
    notes: [`ci-prober: node ${MAIN} once --config ${config} --json (login + pull probes of one engine-mode runner)`],
    run: () => measure(process.execPath, [MAIN, "once", "--config", config, "--json"], { timeoutMs: PROCESS_TIMEOUT_MS }),
  };
}

function cliCommands(info: ServicesInfo, user: { username: string; password: string }, dir: string): Contender {
  const docker = dockerCli();
  const env = { DOCKER_CONFIG: join(dir, "cli-docker-config") };
  mkdirSync(env.DOCKER_CONFIG, { recursive: true });
  return {
    label: "docker login + docker pull",
    notes: [],
    async run() {
      const login = await measure(docker, ["-H", info.dockerHost, "login", "-u", user.username, "--password-stdin", info.token.host], {
        env,
        input: user.password,
        timeoutMs: PROCESS_TIMEOUT_MS,
      });
      const pull = await measure(docker, ["-H", info.dockerHost, "pull", "-q", info.token.image], { env, timeoutMs: PROCESS_TIMEOUT_MS });
      return { seconds: login.seconds + pull.seconds, peakRssKb: Math.max(login.peakRssKb, pull.peakRssKb) };
    },
  };
}
