import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import type { AddressInfo } from "node:net";

/**
 * A registry stand-in on 127.0.0.1 that forwards to a real registry and, for
 * requests matching a rule, answers what the real one cannot be made to:
 * error statuses with registry error bodies, truncated or corrupted bodies,
 * replaced manifests, redirects to another host, bodies that stall.
 */
export type FaultAction =
  | { kind: "respond"; status: number; body?: string | Buffer; headers?: Record<string, string>; chunked?: boolean }
  /** The upstream answer with its full Content-Length, cut after keepBytes, then the connection closed. */
  | { kind: "truncate"; keepBytes: number }
  /** The upstream answer with one byte changed, length and headers kept. */
  | { kind: "corrupt" }
  /** 200 with this body instead of upstream's (no Docker-Content-Digest unless given). */
  | { kind: "replace"; body: string; contentType: string; headers?: Record<string, string> }
  /** 307 to the storage server under another host name ("localhost"), which serves upstream's body. */
  | { kind: "redirect" }
  /** Upstream's headers and first keepBytes, then nothing, ever. */
  | { kind: "stall"; keepBytes: number }
  /**
   * 302 back to the same path with ?hop=n+1 and a small body, `hops` times, then upstream's answer;
   * Infinity is a redirect loop. Each redirect body has fully arrived before the client reads it.
   */
  | { kind: "hops"; hops: number }
  /** Upstream's answer, its body written in `chunks` pieces spread over `overMs`. */
  | { kind: "slow"; chunks: number; overMs: number }
  /** 200, chunked, `bytes` of spaces generated as the client reads them; what was sent goes to `stats.sent`. */
  | { kind: "endless"; bytes: number; contentType: string };

export interface FaultRule {
  method?: string;
  path: RegExp;
  action: FaultAction;
}

/** What a server saw of one request; whether it carried Authorization, never its value. */
export interface SeenRequest {
  method: string;
  path: string;
  authorization: boolean;
}

export interface FaultProxy {
  /** host:port of the proxy, a registry key. */
  host: string;
  /** Bytes an `endless` answer got onto the wire before the client stopped reading. */
  stats: { sent: number };
  requests: SeenRequest[];
  storageRequests: SeenRequest[];
  setRules(rules: FaultRule[]): void;
  close(): Promise<void>;
}

interface Upstream {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export async function startFaultProxy(upstreamHost: string): Promise<FaultProxy> {
  let rules: FaultRule[] = [];
  const requests: SeenRequest[] = [];
  const storageRequests: SeenRequest[] = [];
  const stash = new Map<string, Upstream>();
  const stats = { sent: 0 };
  const storage = createServer((req, res) => {
    storageRequests.push(seen(req));
    const stored = stash.get(req.url ?? "");
    if (!stored) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(stored.body.length) });
    res.end(stored.body);
  });
  const storagePort = await listen(storage);
  const proxy = createServer((req, res) => {
    requests.push(seen(req));
    const rule = rules.find((r) => (r.method ?? req.method) === req.method && r.path.test(req.url ?? ""));
    handle(req, res, rule?.action, upstreamHost, { stash, storagePort, stats }).catch((err: unknown) => {
      res.destroy(err instanceof Error ? err : new Error(String(err)));
    });
  });
  const port = await listen(proxy);
  return {
    host: `127.0.0.1:${port}`,
    stats,
    requests,
    storageRequests,
    setRules(next) {
      rules = next;
    },
    async close() {
      await Promise.all([closeServer(proxy), closeServer(storage)]);
    },
  };
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  action: FaultAction | undefined,
  upstreamHost: string,
  ctx: { stash: Map<string, Upstream>; storagePort: number; stats: { sent: number } },
): Promise<void> {
  if (action?.kind === "endless") {
    endless(res, action.bytes, action.contentType, ctx.stats);
    return;
  }
  if (action?.kind === "respond") {
    const body = action.body ?? "";
    const length = action.chunked ? {} : { "content-length": String(Buffer.byteLength(body)) };
    res.writeHead(action.status, { "content-type": "application/json", ...length, ...action.headers });
    res.end(body);
    return;
  }
  if (action?.kind === "replace") {
    res.writeHead(200, { "content-type": action.contentType, "content-length": String(Buffer.byteLength(action.body)), ...action.headers });
    res.end(action.body);
    return;
  }
  if (action?.kind === "hops") {
    const url = new URL(req.url ?? "/", "http://proxy");
    const hop = Number(url.searchParams.get("hop") ?? "0");
    if (hop < action.hops) {
      const body = `hop ${hop + 1}`;
      res.writeHead(302, {
        location: `${url.pathname}?hop=${hop + 1}`,
        "content-type": "text/plain",
        "content-length": String(body.length),
      });
      res.end(body);
      return;
    }
    req.url = url.pathname;
  }
  const up = await forward(req, upstreamHost);
  const headers = { ...up.headers };
  delete headers.connection;
  delete headers["transfer-encoding"];
  headers["content-length"] = String(up.body.length);
  switch (action?.kind) {
    case undefined:
    case "hops":
      res.writeHead(up.status, headers).end(up.body);
      return;
    case "corrupt": {
      const body = Buffer.from(up.body);
      const at = Math.floor(body.length / 2);
      body[at] = (body[at] ?? 0) ^ 0x20;
      res.writeHead(up.status, headers).end(body);
      return;
    }
    case "truncate":
      res.writeHead(up.status, headers);
      res.write(up.body.subarray(0, action.keepBytes), () => res.destroy());
      return;
    case "slow": {
      res.writeHead(up.status, headers);
      const size = Math.ceil(up.body.length / action.chunks);
      for (let i = 0; i < action.chunks; i++) {
        await new Promise((r) => setTimeout(r, action.overMs / action.chunks));
        if (res.destroyed) return;
        res.write(up.body.subarray(i * size, (i + 1) * size));
      }
      res.end();
      return;
    }
    case "stall":
      res.writeHead(up.status, headers);
      res.write(up.body.subarray(0, action.keepBytes));
      return;
    case "redirect": {
      const key = `/storage/${ctx.stash.size + 1}`;
      ctx.stash.set(key, up);
      res.writeHead(307, { location: `http://localhost:${ctx.storagePort}${key}`, "content-length": "0" }).end();
      return;
    }
  }
}

/** Write `bytes` of spaces, chunked, only as fast as the client takes them, counting what went out. */
function endless(res: ServerResponse, bytes: number, contentType: string, stats: { sent: number }): void {
  res.writeHead(200, { "content-type": contentType });
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  let left = bytes;
  const pump = () => {
    while (left > 0 && !res.destroyed) {
      const n = Math.min(left, chunk.length);
      left -= n;
      stats.sent += n;
      if (!res.write(chunk.subarray(0, n))) {
        res.once("drain", pump);
        return;
      }
    }
    if (left === 0) res.end();
  };
  res.on("error", () => undefined);
  pump();
}

function forward(req: IncomingMessage, upstreamHost: string): Promise<Upstream> {
  const [hostname, port] = upstreamHost.split(":");
  return new Promise((resolve, reject) => {
    const headers = { ...req.headers, host: upstreamHost };
    const out = request({ hostname, port: Number(port), method: req.method, path: req.url, headers }, (up) => {
      const chunks: Buffer[] = [];
      up.on("data", (c: Buffer) => chunks.push(c));
      up.on("end", () => resolve({ status: up.statusCode ?? 502, headers: up.headers, body: Buffer.concat(chunks) }));
      up.on("error", reject);
    });
    out.on("error", reject);
    out.setTimeout(10_000, () => out.destroy(new Error("upstream timed out")));
    req.pipe(out);
  });
}

function seen(req: IncomingMessage): SeenRequest {
  return { method: req.method ?? "", path: req.url ?? "", authorization: req.headers.authorization !== undefined };
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)));
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

/** A server that accepts connections and never answers: a hung registry. */
export async function startSilentServer(): Promise<{ host: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: NetServer = createNetServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => undefined);
    socket.on("close", () => sockets.delete(socket));
  });
  const port = await new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)));
  return {
    host: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
