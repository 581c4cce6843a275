import { createHash, randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A registry stand-in on 127.0.0.1 (plain HTTP, no auth) serving one
 * repository with one tag, counting what is asked of it: manifest GETs and
 * HEADs, blob requests and blob bytes sent. `retag()` pushes a new image
 * under the same tag. Every answer carries Docker Hub's rate-limit headers.
 */
export interface CountingRegistry {
  host: string;
  image: string;
  counts: { manifestGet: number; manifestHead: number; blobGets: number; blobBytes: number; pings: number };
  /** Every request as "METHOD /path". */
  requests: string[];
  digest(): string;
  retag(): void;
  rateLimit: { limit: number; remaining: number };
  close(): Promise<void>;
}

const MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json";
const repository = "ci/app";

function sha(buf: Buffer): string {
  return `sha256:${createHash("sha256").update(buf).digest("hex")}`;
}

function buildImage(layerBytes: number): { manifest: Buffer; blobs: Map<string, Buffer> } {
  const config = Buffer.from(
    JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] }, nonce: randomBytes(8).toString("hex") }),
  );
  const layer = randomBytes(layerBytes);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST_TYPE,
      config: { mediaType: "application/vnd.docker.container.image.v1+json", size: config.length, digest: sha(config) },
      layers: [{ mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", size: layer.length, digest: sha(layer) }],
    }),
  );
  return {
    manifest,
    blobs: new Map([
      [sha(config), config],
      [sha(layer), layer],
    ]),
  };
}

export async function startCountingRegistry(layerBytes = 256 * 1024): Promise<CountingRegistry> {
  let image = buildImage(layerBytes);
  const counts = { manifestGet: 0, manifestHead: 0, blobGets: 0, blobBytes: 0, pings: 0 };
  const requests: string[] = [];
  const rateLimit = { limit: 100, remaining: 76 };
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://127.0.0.1").pathname;
    requests.push(`${req.method} ${path}`);
    const headers = {
      "ratelimit-limit": `${rateLimit.limit};w=21600`,
      "ratelimit-remaining": `${rateLimit.remaining};w=21600`,
      "docker-distribution-api-version": "registry/2.0",
    };
    if (path === "/v2/") {
      counts.pings++;
      res.writeHead(200, { ...headers, "content-type": "application/json" }).end("{}");
      return;
    }
    if (path === `/v2/${repository}/manifests/latest` || path === `/v2/${repository}/manifests/${sha(image.manifest)}`) {
      const head = {
        ...headers,
        "content-type": MANIFEST_TYPE,
        "content-length": String(image.manifest.length),
        "docker-content-digest": sha(image.manifest),
      };
      if (req.method === "HEAD") {
        counts.manifestHead++;
        res.writeHead(200, head).end();
      } else {
        counts.manifestGet++;
        res.writeHead(200, head).end(image.manifest);
      }
      return;
    }
    const blob = /^\/v2\/ci\/app\/blobs\/(sha256:[0-9a-f]{64})$/.exec(path);
    const body = blob?.[1] !== undefined ? image.blobs.get(blob[1]) : undefined;
    if (body !== undefined) {
      counts.blobGets++;
      counts.blobBytes += body.length;
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(body.length) }).end(body);
      return;
    }
    res
      .writeHead(404, { "content-type": "application/json" })
      .end(JSON.stringify({ errors: [{ code: "MANIFEST_UNKNOWN", message: "manifest unknown" }] }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const host = `127.0.0.1:${port}`;
  return {
    host,
    image: `${host}/${repository}:latest`,
    counts,
    requests,
    rateLimit,
    digest: () => sha(image.manifest),
    retag: () => {
      image = buildImage(layerBytes);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
