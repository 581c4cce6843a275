import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { parseImageRef } from "../../../src/image.js";
import { runProbe } from "../../../src/probes/run.js";
import { RegistryClient } from "../../../src/registry/client.js";
import { BufferPool, readBuffers } from "../../../src/registry/pool.js";
import { idleBlobConnections } from "../../../src/registry/rawget.js";
import { probeContext } from "../../helpers/registry.js";

const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux" }));
const layers = [randomBytes(300_000), randomBytes(700_000)];
const manifest = JSON.stringify({
  schemaVersion: 2,
  mediaType: DOCKER_MANIFEST,
  config: { mediaType: "application/vnd.docker.container.image.v1+json", digest: sha(config), size: config.length },
  layers: layers.map((l) => ({ mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", digest: sha(l), size: l.length })),
});
const blobs = new Map([config, ...layers].map((b) => [`/v2/pool/app/blobs/${sha(b)}`, b]));

let server: Server;
let host: string;
/** Per TCP connection the server accepted: the paths it served on it. */
let connections: string[][];
/** Close each connection after its first blob answer (a registry with keep-alive off). */
let closeAfterBlob = false;

function handle(req: IncomingMessage, res: ServerResponse): void {
  const blob = blobs.get(req.url ?? "");
  if (req.url === "/v2/") {
    res.writeHead(200, { "content-type": "application/json", "content-length": "2" }).end("{}");
  } else if (req.url === "/v2/pool/app/manifests/latest") {
    res.writeHead(200, { "content-type": DOCKER_MANIFEST, "content-length": String(manifest.length) }).end(manifest);
  } else if (blob) {
    res.writeHead(200, { "content-length": String(blob.length), ...(closeAfterBlob ? { connection: "close" } : {}) }).end(blob);
  } else {
    res.writeHead(404, { "content-length": "2" }).end("{}");
  }
}

beforeAll(async () => {
  server = createServer((req, res) => {
    const socket = req.socket as Socket & { served?: string[] };
    socket.served?.push(req.url ?? "");
    handle(req, res);
  });
  server.on("connection", (socket: Socket & { served?: string[] }) => {
    socket.served = [];
    connections.push(socket.served);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  server.closeAllConnections();
  connections = [];
  closeAfterBlob = false;
});

function pull() {
  const ctx = probeContext({ target: `${host}/pool/app:latest` });
  return runProbe("pull", ctx, async (c) => {
    const client = new RegistryClient({
      registry: host,
      credential: undefined,
      transport: undefined,
      signal: ctx.signal,
      log: (m) => ctx.log.step(m),
    });
    try {
      c.record.bytes((await client.pull(parseImageRef(ctx.target), { os: "linux", architecture: "amd64" })).bytes);
    } finally {
      client.close();
    }
  });
}

const isBlob = (path: string) => path.includes("/blobs/");

describe("connections shared by the probes of one registry", () => {
  test("three pulls one after another send their 9 blob GETs over one kept-alive connection", async () => {
    for (let i = 0; i < 3; i++) expect(await pull()).toMatchObject({ success: true, bytes: 1_000_000 + config.length });
    const blobConnections = connections.filter((c) => c.some(isBlob));
    expect(blobConnections.map((c) => c.length)).toEqual([9]);
    // Ping and manifest of all three pulls went over kept-alive node:http sockets: at most one per request in flight.
    const small = connections.filter((c) => !c.some(isBlob));
    expect(small.reduce((n, c) => n + c.length, 0)).toBe(6);
    expect(small.length).toBeLessThanOrEqual(2);
    expect(idleBlobConnections()).toBe(1);
  });

  test("four pulls at once open at most four blob connections and reuse them for a fifth", async () => {
    const results = await Promise.all([pull(), pull(), pull(), pull()]);
    expect(results.map((r) => r.error ?? "ok")).toEqual(["ok", "ok", "ok", "ok"]);
    const opened = connections.filter((c) => c.some(isBlob)).length;
    expect(opened).toBeGreaterThanOrEqual(1);
    expect(opened).toBeLessThanOrEqual(4);
    expect(await pull()).toMatchObject({ success: true });
    expect(connections.filter((c) => c.some(isBlob)).length).toBe(opened);
  });

  test("a registry that closes after each blob answer gets a new connection per blob, and every pull succeeds", async () => {
    closeAfterBlob = true;
    for (let i = 0; i < 2; i++) expect((await pull()).error ?? "ok").toBe("ok");
    expect(connections.filter((c) => c.some(isBlob)).map((c) => c.length)).toEqual([1, 1, 1, 1, 1, 1]);
    expect(idleBlobConnections()).toBe(0);
  });

  test("an idle connection the registry dropped is replaced: the GET goes once more on a new one", async () => {
    expect(await pull()).toMatchObject({ success: true });
    expect(idleBlobConnections()).toBe(1);
    server.closeAllConnections();
    await new Promise((r) => setTimeout(r, 50));
    expect(await pull()).toMatchObject({ success: true });
    expect(connections.filter((c) => c.some(isBlob)).map((c) => c.length)).toEqual([3, 3]);
  });

  test("every read buffer lent to a blob GET is given back, whatever the outcome", async () => {
    await Promise.all([pull(), pull(), pull()]);
    expect(readBuffers.stats().lent).toBe(0);
  });
});

describe("BufferPool", () => {
  test("lends a freed buffer again instead of allocating, and keeps at most maxFree", () => {
    const pool = new BufferPool(1024, 2);
    const a = pool.take();
    const b = pool.take();
    const c = pool.take();
    pool.give(a);
    pool.give(b);
    pool.give(c);
    expect(pool.stats()).toEqual({ lent: 0, free: 2 });
    const again = pool.take();
    expect(again === b || again === a).toBe(true);
    expect(pool.stats()).toEqual({ lent: 1, free: 1 });
  });
});
