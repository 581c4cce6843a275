import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer as createHttpServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { errnoText, oneLine } from "../errors.js";
import type { Logger } from "../log.js";
import { BasicAuth } from "./basic-auth.js";
import { parseWebConfig, readTlsMaterial, readWebConfig, WebConfigError, type TlsSettings, type WebConfig } from "./web-config.js";

export interface ListenOptions {
  host: string;
  port: number;
  /** exporter-toolkit web config; absent: plain HTTP, no auth. */
  webConfigFile?: string;
  logger: Logger;
  handler: RequestListener;
}

export interface Listening {
  /** host:port actually bound. */
  address: string;
  /** Whether it serves HTTPS (decided at start from the web config, as exporter-toolkit does). */
  tls: boolean;
  close(): Promise<void>;
}

const KEEP_ALIVE_MS = 65_000;
const REQUEST_TIMEOUT_MS = 30_000;
/** TLS servers kept for connections opened under an older web config; older ones are closed. */
const KEPT_TLS_SERVERS = 4;

/**
 * Serve `handler` behind the web config: the file is read (and checked) at start, a broken one is an
 * error here; afterwards it is re-read on every request and on every new TLS connection, as
 * exporter-toolkit does, so a changed password or a rotated certificate applies without a restart.
 * A file that breaks later makes every request fail with 500 and every handshake fail, logged once
 * per distinct error: never served open.
 */
export async function listenGuarded(opts: ListenOptions): Promise<Listening> {
  if (opts.webConfigFile === undefined) return listen(plainServer(opts.handler), opts, false, () => undefined);
  const file = opts.webConfigFile;
  const initial = await checkWebConfig(file, opts.logger);
  const gate = new Gate(file, Boolean(initial.tls), opts.logger);
  const handler: RequestListener = (req, res) => {
    gate.admit(req, res).then(
      (ok) => ok && opts.handler(req, res),
      (err: unknown) => {
        opts.logger.error({ error: oneLine(err) }, "request gate failed");
        refuse(res, 500, "Internal Server Error");
      },
    );
  };
  if (!initial.tls) return listen(plainServer(handler), opts, false, () => undefined);
  const tls = new TlsServers(gate, handler, opts.logger);
  const front = createNetServer((socket) => tls.accept(socket));
  return listen(front, opts, true, () => tls.closeAll());
}

/** Read a web config and everything it names, and build its TLS context once: what start-up and a reload require. */
export async function checkWebConfig(file: string, logger: Logger): Promise<WebConfig> {
  const config = await readWebConfig(file);
  if (config.tls) closeServer(httpsServer(file, config.tls, await readTlsMaterial(file, config.tls), () => undefined, logger));
  return config;
}

function plainServer(handler: RequestListener): Server {
  const server = createHttpServer(handler);
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  return server;
}

async function listen(server: Server | NetServer, opts: ListenOptions, tls: boolean, closeInner: () => void): Promise<Listening> {
  const sockets = new Set<Socket>();
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  return {
    address: `${bound.family === "IPv6" ? `[${bound.address}]` : bound.address}:${bound.port}`,
    tls,
    close: () =>
      new Promise<void>((resolve) => {
        closeInner();
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Per request: the current web config, its headers, rate limit and basic auth. */
class Gate {
  readonly #auth = new BasicAuth();
  readonly #limiter = new TokenBucket();
  #text: string | undefined;
  #parsed: WebConfig | Error = new Error("not read yet");
  #lastProblem = "";

  constructor(
    readonly file: string,
    readonly tls: boolean,
    private readonly logger: Logger,
  ) {}

  /** The web config as the file says now; parsed again only when its text changed. */
  async current(): Promise<WebConfig> {
    let text: string;
    try {
      text = await readFile(this.file, "utf8");
    } catch (err) {
      throw new WebConfigError(this.file, errnoText(err));
    }
    if (text !== this.#text) {
      this.#text = text;
      try {
        this.#parsed = parseWebConfig(this.file, text);
      } catch (err) {
        this.#parsed = err instanceof Error ? err : new Error(String(err));
      }
    }
    if (this.#parsed instanceof Error) throw this.#parsed;
    if (Boolean(this.#parsed.tls) !== this.tls) {
      // exporter-toolkit decides TLS once at start; a file that now says otherwise is refused, not half-applied.
      throw new WebConfigError(
        this.file,
        this.tls ? "tls_server_config was removed after start" : "tls_server_config was added after start: restart ci-prober to serve TLS",
      );
    }
    return this.#parsed;
  }

  /** Sends the refusal itself and resolves false, or resolves true for the handler to answer. */
  async admit(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    let config: WebConfig;
    try {
      config = await this.current();
      this.usable();
    } catch (err) {
      this.problem(err);
      refuse(res, 500, "Internal Server Error");
      return false;
    }
    if (config.rateLimit && !this.#limiter.take(config.rateLimit)) {
      refuse(res, 429, "Too Many Requests");
      return false;
    }
    for (const [name, value] of Object.entries(config.headers)) res.setHeader(name, value);
    if (config.users.size === 0 || (await this.#auth.check(config.users, req.headers.authorization))) return true;
    res.setHeader("www-authenticate", "Basic");
    refuse(res, 401, "Unauthorized");
    return false;
  }

  problem(err: unknown): void {
    const error = oneLine(err);
    if (error === this.#lastProblem) return;
    this.#lastProblem = error;
    this.logger.error({ file: this.file, error }, "web config unusable: refusing requests");
  }

  usable(): void {
    if (this.#lastProblem === "") return;
    this.#lastProblem = "";
    this.logger.info({ file: this.file }, "web config usable again");
  }
}

function refuse(res: ServerResponse, status: number, text: string): void {
  if (res.headersSent) return;
  // As Go's http.Error writes it.
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "x-content-type-options": "nosniff" }).end(`${text}\n`);
}

/**
 * TLS with the web config of the moment: each accepted connection reads the file and the certificate
 * files again (Node has no per-connection hook like Go's GetConfigForClient that also fires without SNI,
 * and Prometheus sends no SNI to an IP address), then goes to the HTTPS server built for exactly that
 * material. Client-auth policies Node's OpenSSL options do not express are checked once the handshake
 * is done, before any request is read.
 */
class TlsServers {
  readonly #servers = new Map<string, Server>();

  constructor(
    private readonly gate: Gate,
    private readonly handler: RequestListener,
    private readonly logger: Logger,
  ) {}

  accept(socket: Socket): void {
    socket.on("error", () => socket.destroy());
    this.#serverFor().then(
      (server) => {
        this.gate.usable();
        if (!socket.destroyed) server.emit("connection", socket);
      },
      (err: unknown) => {
        this.gate.problem(err);
        socket.destroy();
      },
    );
  }

  async #serverFor(): Promise<Server> {
    const config = await this.gate.current();
    const tls = config.tls as TlsSettings;
    const material = await readTlsMaterial(this.gate.file, tls);
    const key = createHash("sha256")
      .update(JSON.stringify([tls, material]))
      .digest("hex");
    const known = this.#servers.get(key);
    if (known) return known;
    const server = httpsServer(this.gate.file, tls, material, this.handler, this.logger);
    this.#servers.set(key, server);
    for (const [old, s] of this.#servers) {
      if (this.#servers.size <= KEPT_TLS_SERVERS) break;
      this.#servers.delete(old);
      closeServer(s);
    }
    return server;
  }

  closeAll(): void {
    for (const s of this.#servers.values()) closeServer(s);
    this.#servers.clear();
  }
}

function httpsServer(
  file: string,
  tls: TlsSettings,
  material: { cert: string; key: string; ca?: string },
  handler: RequestListener,
  logger: Logger,
): Server {
  let server: Server;
  try {
    server = createHttpsServer({ ...secureOptions(tls, material) }, handler);
  } catch (err) {
    throw new WebConfigError(file, `tls_server_config: ${oneLine(err)}`);
  }
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.prependListener("secureConnection", (socket: TLSSocket) => {
    if (!clientCertAcceptable(socket, tls)) socket.destroy();
  });
  server.on("tlsClientError", (err) => logger.debug({ error: oneLine(err) }, "TLS handshake failed"));
  // It never listens itself (the front server hands it connections); "listening" is what starts
  // node:http's connection tracking, which enforces requestTimeout and lets close() end keep-alives.
  server.emit("listening");
  return server;
}

function secureOptions(tls: TlsSettings, material: { cert: string; key: string; ca?: string }) {
  const requestCert = tls.clientAuth !== "NoClientCert";
  return {
    cert: material.cert,
    key: material.key,
    ...(material.ca !== undefined ? { ca: material.ca } : {}),
    requestCert,
    // OpenSSL itself rejects a missing or unverified certificate only for RequireAndVerifyClientCert; the rest are checked after.
    rejectUnauthorized: tls.clientAuth === "RequireAndVerifyClientCert",
    minVersion: tls.minVersion,
    maxVersion: tls.maxVersion,
    ...(tls.ciphers !== undefined ? { ciphers: tls.ciphers } : {}),
    ...(tls.ecdhCurve !== undefined ? { ecdhCurve: tls.ecdhCurve } : {}),
    honorCipherOrder: tls.honorCipherOrder,
  };
}

function clientCertAcceptable(socket: TLSSocket, tls: TlsSettings): boolean {
  const cert = socket.getPeerCertificate();
  const given = Object.keys(cert).length > 0;
  if (tls.clientAuth === "RequireAnyClientCert" && !given) return false;
  if (tls.clientAuth === "VerifyClientCertIfGiven" && given && !socket.authorized) return false;
  if (!tls.allowedSans) return true;
  // "DNS:a.example, IP Address:127.0.0.1, email:x@example, URI:spiffe://…", as Go compares DNS, IP, e-mail and URI SANs.
  const sans = (cert.subjectaltname ?? "").split(", ").map((entry) => entry.slice(entry.indexOf(":") + 1));
  return given && sans.some((san) => tls.allowedSans?.includes(san));
}

function closeServer(server: Server): void {
  server.closeAllConnections();
  // Never listened: close() then only stops the connection tracking; its "not running" error is expected.
  server.close(() => undefined);
}

/** golang.org/x/time/rate's token bucket, as exporter-toolkit's rate_limit uses it: one token per interval, at most `burst`. */
class TokenBucket {
  #tokens = -1;
  #at = 0;
  #shape = "";

  take(limit: { intervalMs: number; burst: number }): boolean {
    const now = Date.now();
    const shape = `${limit.intervalMs}/${limit.burst}`;
    if (shape !== this.#shape) {
      this.#shape = shape;
      this.#tokens = limit.burst;
      this.#at = now;
    }
    this.#tokens = Math.min(limit.burst, this.#tokens + (now - this.#at) / limit.intervalMs);
    this.#at = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
