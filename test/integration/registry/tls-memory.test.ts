import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { MAIN } from "../../helpers/cli.js";
import { tempDir } from "../../helpers/fixtures.js";
import { selfSignedCert } from "../../services/tls.js";

const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
const BLOCK = randomBytes(1024 * 1024);
const LAYER_BYTES = 256 * BLOCK.length;
const RUNS = 3;

/** A one-layer image whose 256 MiB layer is one random MiB repeated: served from memory, no disk. */
const image = (() => {
  const hash = createHash("sha256");
  for (let i = 0; i < 256; i++) hash.update(BLOCK);
  const layer = `sha256:${hash.digest("hex")}`;
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux" }));
  const configDigest = `sha256:${createHash("sha256").update(config).digest("hex")}`;
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: DOCKER_MANIFEST,
    config: { mediaType: "application/vnd.docker.container.image.v1+json", digest: configDigest, size: config.length },
    layers: [{ mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", digest: layer, size: LAYER_BYTES }],
  });
  return { manifest, config, configDigest, layer };
})();

function serve(req: IncomingMessage, res: ServerResponse): void {
  if (req.url === "/v2/") {
    res.writeHead(200, { "content-length": "2" }).end("{}");
  } else if (req.url === "/v2/big/app/manifests/latest") {
    res.writeHead(200, { "content-type": DOCKER_MANIFEST, "content-length": String(image.manifest.length) }).end(image.manifest);
  } else if (req.url === `/v2/big/app/blobs/${image.configDigest}`) {
    res.writeHead(200, { "content-length": String(image.config.length) }).end(image.config);
  } else if (req.url === `/v2/big/app/blobs/${image.layer}`) {
    res.writeHead(200, { "content-length": String(LAYER_BYTES) });
    let sent = 0;
    const more = () => {
      while (sent < 256) {
        sent++;
        if (!res.write(BLOCK)) return void res.once("drain", more);
      }
      res.end();
    };
    more();
  } else {
    res.writeHead(404, { "content-length": "2" }).end("{}");
  }
}

let dir: string;
let servers: Server[] = [];
const configs = { tls: "", plain: "" };

beforeAll(async () => {
  dir = tempDir("tls-memory");
  selfSignedCert(dir, { name: "ci-prober-tls-memory", days: 2 });
  const https = createHttpsServer({ key: readFileSync(join(dir, "key.pem")), cert: readFileSync(join(dir, "cert.pem")) }, serve);
  const http = createHttpServer(serve);
  servers = [https, http];
  for (const s of servers) await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const hostOf = (s: Server) => `127.0.0.1:${(s.address() as AddressInfo).port}`;
  writeFileSync(join(dir, "config.json"), JSON.stringify({ auths: {} }));
  const write = (name: string, host: string, registries: string[]) => {
    const file = join(dir, `${name}.yml`);
    writeFileSync(
      file,
      [
        "timeout: 60s",
        ...registries,
        "runners:",
        `  - {name: big, mode: direct, docker_config: ${join(dir, "config.json")}, images: ["${host}/big/app:latest"]}`,
        "",
      ].join("\n"),
    );
    return file;
  };
  configs.tls = write("tls", hostOf(https), ["registries:", `  "${hostOf(https)}": {ca_file: ${join(dir, "cert.pem")}}`]);
  configs.plain = write("plain", hostOf(http), []);
});

afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

/** Peak RSS (MB) of a whole `ci-prober once` process, as /usr/bin/time reports it; the pull must have passed. */
function peakRssMb(config: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn("/usr/bin/time", ["-f", "%M", process.execPath, MAIN, "once", "--config", config, "--json"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      const rows = JSON.parse(out || "[]") as { probe: string; success: boolean; error: string | null }[];
      const pull = rows.find((r) => r.probe === "pull");
      if (code !== 0 || pull?.success !== true) reject(new Error(`once exited ${code}: ${pull?.error ?? err.slice(-300)}`));
      else resolve(Number(err.trim().split("\n").at(-1)) / 1024);
    });
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

test("a 256 MiB pull over TLS with a configured CA peaks within 20 MB of the same pull over plain HTTP", { timeout: 180_000 }, async () => {
  const tls: number[] = [];
  const plain: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    tls.push(await peakRssMb(configs.tls));
    plain.push(await peakRssMb(configs.plain));
  }
  expect(
    Math.abs(median(tls) - median(plain)),
    `peak RSS over TLS ${tls.map(Math.round)} MB, plain ${plain.map(Math.round)} MB`,
  ).toBeLessThanOrEqual(20);
  // And neither holds the pulled bytes: both stay far below the 256 MiB that went through.
  expect(Math.max(...tls, ...plain)).toBeLessThan(150);
});
