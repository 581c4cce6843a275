import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, inject, test } from "vitest";
import { ROOT } from "../../helpers/alerts/files.js";
import { waitFor } from "../../helpers/daemon.js";
import { tempDir, writeDockerConfig } from "../../helpers/fixtures.js";
import { dockerCli, startDockerd } from "../../services/index.js";
import { freePort, run, type Proc } from "../../services/procs.js";
import { buildNodeBaseTar, CA_BUNDLE, NODE_UID } from "./base.js";

// The Dockerfile as a user builds it, against the suite's own dockerd: the base image is made here
// from this machine's node (no Docker Hub), the classic builder runs npm ci over the host network.

const services = inject("services");
const BASE = "ci-prober-test/node-base:local";
const IMAGE = "ci-prober-test/ci-prober:image-test";
const CONTAINER = "ci-prober-image-test";

// A dockerd of its own on overlay2: the suite's shared one uses vfs, which copies the whole
// filesystem for every build step (2 min 45 s against 55 s here), and its disk stays clean.
// Niced: npm ci and tsc in the build must not take the CPU from the suite's timing tests.
let dockerd: { proc: Proc; host: string } | undefined;
let startError = "";
const dir = tempDir("image");

beforeAll(async () => {
  try {
    dockerd = await startDockerd(join(dir, "d"), undefined, "overlay2", 10);
  } catch (err) {
    startError = err instanceof Error ? err.message : String(err);
  }
});

afterAll(async () => {
  await dockerd?.proc.stop();
});

function docker(args: string[], timeoutMs = 60_000): Promise<string> {
  return run(dockerCli(), ["-H", dockerd?.host ?? "", ...args], { timeoutMs, env: { ...process.env, DOCKER_BUILDKIT: "0" } });
}

test("the image builds without Docker Hub, runs as the non-root node user, reads a mounted config.toml and config.json, is ready, and stops with exit 0", async (ctx) => {
  if (!dockerd) ctx.skip(`dockerd cannot start here, so the image is not built: ${startError}`);
  const baseStart = Date.now();
  await docker(
    ["import", "--change", `ENV NODE_EXTRA_CA_CERTS=${CA_BUNDLE}`, "--change", "ENV PATH=/usr/bin:/bin", buildNodeBaseTar(dir), BASE],
    120_000,
  );
  const baseSeconds = (Date.now() - baseStart) / 1000;

  const buildStart = Date.now();
  await docker(["build", "--network", "host", "--force-rm", "--build-arg", `BASE_IMAGE=${BASE}`, "-t", IMAGE, ROOT], 600_000);
  const buildSeconds = (Date.now() - buildStart) / 1000;
  const [size, user] = (await docker(["image", "inspect", "-f", "{{.Size}} {{.Config.User}}", IMAGE])).trim().split(" ");
  expect(user).toBe("node");

  // What a runner host holds: gitlab-runner's config.toml and the runner user's Docker config.
  const registry = services.htpasswd.host;
  const etc = join(dir, "gitlab-runner");
  mkdirSync(etc, { recursive: true });
  writeFileSync(
    join(etc, "config.toml"),
    `concurrent = 1\n\n[[runners]]\n  name = "image-runner"\n  executor = "docker"\n  [runners.docker]\n    image = "alpine"\n`,
  );
  const dockerDir = join(dir, "home", ".docker");
  writeDockerConfig(dockerDir, { [registry]: { username: "alice", password: services.htpasswd.users.alice ?? "" } });
  const port = await freePort();
  writeFileSync(
    join(dir, "ci-prober.yml"),
    [
      "interval: 2s",
      "timeout: 10s",
      `listen_address: 127.0.0.1:${port}`,
      `images: ["${services.htpasswd.image}"]`,
      "runners:",
      "  - {runner_config: /etc/gitlab-runner/config.toml, docker_config: /home/gitlab-runner/.docker/config.json, mode: direct}",
      "",
    ].join("\n"),
  );
  for (const p of [dir, etc, join(dir, "home"), dockerDir]) chmodSync(p, 0o755);
  chmodSync(join(dockerDir, "config.json"), 0o644);

  await docker([
    "run",
    "-d",
    "--name",
    CONTAINER,
    "--network",
    "host",
    "-v",
    `${etc}:/etc/gitlab-runner:ro`,
    "-v",
    `${dockerDir}:/home/gitlab-runner/.docker:ro`,
    "-v",
    `${join(dir, "ci-prober.yml")}:/etc/ci-prober/ci-prober.yml:ro`,
    "-e",
    "CI_PROBER_CONFIG=/etc/ci-prober/ci-prober.yml",
    IMAGE,
  ]);
  const url = `http://127.0.0.1:${port}`;
  await waitFor("container ready", 60_000, async () =>
    (await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2000) })).status === 200 ? true : undefined,
  );
  const uid = (await docker(["exec", CONTAINER, "id", "-u"])).trim();
  expect(uid).toBe(String(NODE_UID));

  const status = (await (await fetch(`${url}/status`, { signal: AbortSignal.timeout(5000) })).json()) as {
    runners: { name: string; credentials: { source: string; username: string }[] }[];
    probes: { key: string; last: { success: boolean } | null }[];
  };
  expect(status.runners.map((r) => r.name)).toEqual(["image-runner"]);
  expect(status.runners[0]?.credentials.map((c) => [c.username, c.source])).toEqual([
    ["alice", `/home/gitlab-runner/.docker/config.json#auths["${registry}"]`],
  ]);
  expect(status.probes.find((p) => p.key === `login|image-runner|${registry}`)?.last?.success).toBe(true);

  const stopStart = Date.now();
  await docker(["stop", "-t", "20", CONTAINER], 60_000);
  const stopSeconds = (Date.now() - stopStart) / 1000;
  expect((await docker(["inspect", "-f", "{{.State.ExitCode}}", CONTAINER])).trim()).toBe("0");
  // The daemon logs to stderr; docker logs replays it there.
  const logs = await run("sh", ["-c", `${dockerCli()} -H ${dockerd?.host ?? ""} logs ${CONTAINER} 2>&1`]);
  expect(logs).toContain('"msg":"stopping"');
  expect(logs).toContain('"msg":"stopped"');
  console.log(
    `image test: base import ${baseSeconds.toFixed(1)} s, build ${buildSeconds.toFixed(1)} s, image ${(Number(size) / 1e6).toFixed(0)} MB, ` +
      `user ${user} (uid ${uid}), docker stop ${stopSeconds.toFixed(1)} s`,
  );
}, 900_000);
