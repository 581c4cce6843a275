import type { RequestListener, ServerResponse } from "node:http";
import { oneLine } from "../errors.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics/index.js";
import { scrub } from "../secret.js";
import type { StatusStore } from "./status.js";
import { renderStatusPage } from "./status-page.js";
import { parseStatusQuery, statusPage } from "./status-query.js";
import { listenGuarded } from "./web-server.js";

export interface ServerOptions {
  listenAddress: string;
  metrics: Metrics;
  status: StatusStore;
  ready: () => boolean;
  /** exporter-toolkit web config: TLS and basic auth in front of every path. */
  webConfigFile?: string;
  logger: Logger;
  /** POST /-/reload: re-read the config; rejects with the reason it could not be applied. */
  reload?: () => Promise<void>;
}

export interface HttpServer {
  /** host:port actually bound (port 0 in the config picks a free one). */
  address: string;
  /** Whether it serves HTTPS. */
  tls: boolean;
  close(): Promise<void>;
}

/** /metrics, /-/healthy, /-/ready, POST /-/reload, /status, / — nothing else, all behind the web config when there is one (no path exempt). */
export async function startServer(opts: ServerOptions): Promise<HttpServer> {
  const { host, port } = splitAddress(opts.listenAddress);
  return listenGuarded({
    host,
    port,
    logger: opts.logger,
    handler: routes(opts),
    ...(opts.webConfigFile !== undefined ? { webConfigFile: opts.webConfigFile } : {}),
  });
}

function routes(opts: ServerOptions): RequestListener {
  return (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/-/reload") {
      reloadEndpoint(req.method, res, opts.reload);
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end("method not allowed\n");
      return;
    }
    const send = (status: number, type: string, body: string, guard = true) => {
      // Text built from probe results is scrubbed as a last guard; /metrics is not (guard false): it holds no secret by
      // construction (labels are runner names, registries, images, usernames and sources; values are numbers), and a
      // pass over every known secret for each of its 35,000 lines was most of its cost at 1,000 runners.
      res
        .writeHead(status, { "content-type": type, "cache-control": "no-store" })
        .end(req.method === "HEAD" ? undefined : guard ? scrub(body) : body);
    };
    switch (path) {
      case "/metrics":
        opts.metrics.text().then(
          (text) => send(200, opts.metrics.registry.contentType, text, false),
          (err: unknown) => send(500, "text/plain", `metrics: ${err instanceof Error ? err.message : String(err)}\n`),
        );
        return;
      case "/-/healthy":
        send(200, "text/plain; charset=utf-8", "Healthy\n");
        return;
      case "/-/ready":
        if (opts.ready()) send(200, "text/plain; charset=utf-8", "Ready\n");
        else send(503, "text/plain; charset=utf-8", "Not ready: first round of probes still running\n");
        return;
      case "/status": {
        const query = parseStatusQuery(new URL(req.url ?? "/", "http://localhost").searchParams);
        if ("error" in query) send(400, "text/plain; charset=utf-8", `${query.error}\n`);
        else send(200, "application/json", `${JSON.stringify(statusPage(opts.status.toJSON(), query), null, 2)}\n`);
        return;
      }
      case "/":
        send(200, "text/html; charset=utf-8", renderStatusPage(opts.status));
        return;
      default:
        send(404, "text/plain; charset=utf-8", "not found: try /metrics, /status, /-/healthy, /-/ready\n");
    }
  };
}

/** Prometheus' own: POST or PUT, 200 when the new config is running, 500 with the one-line reason when not. */
function reloadEndpoint(method: string | undefined, res: ServerResponse, reload: (() => Promise<void>) | undefined): void {
  const text = (status: number, body: string) =>
    res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" }).end(scrub(body));
  if (method !== "POST" && method !== "PUT") {
    res.writeHead(405, { allow: "POST, PUT", "content-type": "text/plain; charset=utf-8" }).end("Only POST or PUT requests allowed\n");
    return;
  }
  if (!reload) {
    text(404, "not found: reload is not enabled\n");
    return;
  }
  reload().then(
    () => text(200, "config reloaded\n"),
    (err: unknown) => text(500, `failed to reload config: ${oneLine(err)}\n`),
  );
}

export function splitAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(":");
  const host = address.slice(0, i).replace(/^\[|\]$/g, "");
  return { host: host === "" ? "0.0.0.0" : host, port: Number(address.slice(i + 1)) };
}
