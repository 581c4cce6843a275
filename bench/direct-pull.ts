import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { run } from "../test/services/procs.js";
import { startServices, type ServicesInfo } from "../test/services/index.js";
import { type BenchReport, maxRssMb, measure, medianSeconds, pushRandomImage, type Sample, assertOnceSucceeds } from "./lib.js";

const RUNS = 5;
const LAYER_BYTES = 256 * 1024 * 1024;
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const MAIN = join(ROOT, "dist", "src", "main.js");
const PROCESS_TIMEOUT_MS = 120_000;
const IMAGE_PATH = "bench/big:latest";

interface Contender {
  label: string;
  notes: string[];
  run(): Promise<Sample>;
}

/**
 * Direct-mode pull of a 256 MiB single-layer image from the htpasswd registry:
 * a whole `ci-prober once` process against `skopeo copy` to a dir: and the
 * floor (curl of manifest and blobs piped into `openssl dgst -sha256`),
 * alternating, RUNS runs each after one warm-up each.
 */
export async function benchDirectPull(): Promise<BenchReport> {
  // withDockerd:false cannot be used yet: startServices() pushes its busybox image from the test dockerd.
  const services = await startServices();
  try {
    const { info } = services;
    const dir = join(info.tmp, "bench-direct-pull");
    mkdirSync(dir, { recursive: true });
    const image = `${info.htpasswd.host}/${IMAGE_PATH}`;
    await pushBigImage(info, dir, image);
    const password = info.htpasswd.users.alice ?? "";
    const contenders = [
      await proberCommand(info, dir, image, password),
      skopeoCommand(dir, image),
      await floorCommand(info, dir, password),
    ];
    const samples: Sample[][] = contenders.map(() => []);
    for (const c of contenders) await c.run();
    for (let i = 0; i < RUNS; i++) {
      for (const [k, c] of contenders.entries()) samples[k]?.push(await c.run());
    }
    const [ours = 0, skopeo = 0, floor = 0] = samples.map(medianSeconds);
    const rows = contenders.map((c, k) => {
      const mine = samples[k] ?? [];
      return { tool: c.label, medianSeconds: medianSeconds(mine), ratio: ours / medianSeconds(mine), peakRssMb: maxRssMb(mine) };
    });
    const rss = rows[0]?.peakRssMb ?? 0;
    return {
      name: "direct pull, 256 MiB single layer",
      rows,
      notes: [
        `${RUNS} runs each, alternating, after one warm-up each; image ${image} (htpasswd registry, loopback, plain HTTP)`,
        "ratio = ci-prober median / that tool's median",
        `target: at most 0.7x skopeo (${(ours / skopeo).toFixed(2)}x: ${ours / skopeo <= 0.7 ? "met" : "NOT met"}), ` +
          `at most 1.5x the floor (${(ours / floor).toFixed(2)}x: ${ours / floor <= 1.5 ? "met" : "NOT met"}), ` +
          `peak RSS at most 100 MB (${rss} MB: ${rss <= 100 ? "met" : "NOT met"})`,
        ...contenders.flatMap((c) => c.notes),
      ],
    };
  } finally {
    await services.stop();
  }
}

/** The 256 MiB image, pushed as the htpasswd registry's admin. */
async function pushBigImage(info: ServicesInfo, dir: string, image: string): Promise<void> {
  await pushRandomImage(dir, image, LAYER_BYTES, `admin:${info.htpasswd.users.admin ?? ""}`, PROCESS_TIMEOUT_MS);
}

function dockerConfig(dir: string, registry: string, password: string): string {
  const file = join(dir, "docker-config", "config.json");
  mkdirSync(join(dir, "docker-config"), { recursive: true });
  writeFileSync(file, JSON.stringify({ auths: { [registry]: { auth: Buffer.from(`alice:${password}`).toString("base64") } } }), {
    mode: 0o600,
  });
  return file;
}

async function proberCommand(info: ServicesInfo, dir: string, image: string, password: string): Promise<Contender> {
  const config = join(dir, "ci-prober.yml");
  writeFileSync(
    config,
    [
      "timeout: 120s",
      "runners:",
      "  - name: bench",
      `    docker_config: ${dockerConfig(dir, info.htpasswd.host, password)}`,
      "    mode: direct",
      `    images: [${image}]`,
      "",
    ].join("\n"),
  );
  await assertOnceSucceeds(MAIN, config, PROCESS_TIMEOUT_MS);
  return {
    label: "ci-prober once (direct mode)",
    notes: [`ci-prober: node ${MAIN} once --config ${config} --json (login + pull probes of one direct-mode runner)`],
    run: () => measure(process.execPath, [MAIN, "once", "--config", config, "--json"], { timeoutMs: PROCESS_TIMEOUT_MS }),
  };
}

function skopeoCommand(dir: string, image: string): Contender {
  const authfile = join(dir, "docker-config", "config.json");
  const out = join(dir, "skopeo-out");
  return {
    label: "skopeo copy docker:// dir:",
    notes: [
      `skopeo: skopeo copy --src-tls-verify=false --src-authfile <alice> docker://${image} dir:<tmp> (the dir is removed after each run)`,
    ],
    async run() {
      rmSync(out, { recursive: true, force: true });
      const sample = await measure(
        "skopeo",
        ["copy", "--quiet", "--src-tls-verify=false", "--src-authfile", authfile, `docker://${image}`, `dir:${out}`],
        {
          timeoutMs: PROCESS_TIMEOUT_MS,
        },
      );
      rmSync(out, { recursive: true, force: true });
      return sample;
    },
  };
}

/** curl the manifest, then each blob piped into openssl dgst: the least any client can do. */
async function floorCommand(info: ServicesInfo, dir: string, password: string): Promise<Contender> {
  const base = `http://${info.htpasswd.host}/v2/bench/big`;
  const curlrc = join(dir, "curlrc");
  // The credential goes in a curl config file, not on a command line other processes can read.
  writeFileSync(curlrc, `user = "alice:${password}"\nsilent\nfail\n`, { mode: 0o600 });
  const accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
  const manifest = JSON.parse(await run("curl", ["-K", curlrc, "-H", `Accept: ${accept}`, `${base}/manifests/latest`])) as {
    config: { digest: string };
    layers: { digest: string }[];
  };
  const blobs = [manifest.config.digest, ...manifest.layers.map((l) => l.digest)];
  const script = [
    `curl -K ${curlrc} -H 'Accept: ${accept}' ${base}/manifests/latest > /dev/null`,
    ...blobs.map((d) => `curl -K ${curlrc} ${base}/blobs/${d} | openssl dgst -sha256 > /dev/null`),
  ].join(" && ");
  return {
    label: "floor: curl | openssl dgst -sha256",
    notes: [`floor: bash -c "${script.replaceAll(curlrc, "<curlrc>")}"`],
    run: () => measure("bash", ["-c", `set -o pipefail; ${script}`], { timeoutMs: PROCESS_TIMEOUT_MS }),
  };
}
