/*
 * The blob path: HTTP/1.1 GETs over raw net/tls sockets read into a buffer
 * lent from a small shared pool (socket `onread`), each chunk hashed
 * synchronously and dropped. Why not node:http or undici: every socket read
 * there allocates a fresh 64 KiB Buffer, and V8 frees those only when ~64 MB of
 * external memory has piled up, so a 256 MiB pull costs 45-90 MB of garbage on
 * top of the process. Measured (256 MiB over loopback, whole process, sha256):
 * node:http 0.54-0.86 s at 85-89 MB peak RSS, undici 0.58-0.82 s at 113-140 MB,
 * this 0.46-0.59 s at 45-50 MB (bare `node -e 0` is 40 MB); a whole
 * `ci-prober once` pulling it peaked at 103 MB on node:http, 70 MB on this.
 * Connections are kept alive and shared by every probe of an origin (a pull
 * is config + layers: one connect instead of one per blob); the read buffer
 * belongs to the request, not the socket, so idle sockets hold none.
 * Manifests, tokens and pings stay on node:http (transport.ts): they are small.
 */
import { connect as netConnect, isIP, type Socket } from "node:net";
import { type ConnectionOptions, connect as tlsConnect } from "node:tls";
import { ProbeError } from "../reasons.js";
import { IDLE_MS, MAX_IDLE_PER_ORIGIN, readBuffers, trustFor } from "./pool.js";
import { requestFailed } from "./transport.js";

export interface StreamGetOptions {
  /** Sent as is; the caller decides whether this origin may have it. */
  authorization?: string;
  ca?: string;
  signal: AbortSignal;
  /** A 200's body, chunk by chunk. The chunk is a view of a reused buffer: use it before returning. */
  onBody(chunk: Buffer): void;
  userAgent: string;
}

export interface StreamGetResult {
  status: number;
  /** Header names lower-cased; a repeated header keeps its last value. */
  headers: Record<string, string>;
  /** Bytes of the body given to onBody (200) or read (other statuses). */
  bodyBytes: number;
  /** The first 64 KiB of a non-200 body, for its error message. */
  errorBody: Buffer;
}

const HEAD_LIMIT = 64 * 1024;
const ERROR_BODY_LIMIT = 64 * 1024;
/** What an idle socket reads into: anything arriving there is a protocol error and closes it. */
const IDLE_BUFFER = Buffer.allocUnsafeSlow(1024);

/**
 * GET url and stream its body; resolves when the body has ended. Never follows
 * redirects (the caller does, to choose the Authorization). An idle pooled
 * connection is used first; when the far end closed it meanwhile (nothing of an
 * answer arrived), the GET is sent once more on a new one, as any HTTP client does.
 */
export async function streamGet(url: URL, endpoint: string, opts: StreamGetOptions): Promise<StreamGetResult> {
  opts.signal.throwIfAborted();
  const key = poolKey(url, opts.ca);
  const conn = takeIdle(key);
  if (conn !== undefined) {
    try {
      return await exchange(conn, url, endpoint, opts);
    } catch (err) {
      if (!(err instanceof StaleConnection)) throw err;
    }
  }
  return exchange(new Connection(key, url, opts.ca), url, endpoint, opts);
}

/** A reused connection the far end had closed before any byte of the answer: safe to send the GET again. */
class StaleConnection extends Error {}

/** One request and its answer on a connection; the connection goes back to its pool only when the answer ended cleanly. */
function exchange(conn: Connection, url: URL, endpoint: string, opts: StreamGetOptions): Promise<StreamGetResult> {
  return new Promise((resolve, reject) => {
    const reader = new ResponseReader(endpoint, opts.onBody);
    let received = 0;
    const finish = (err: unknown) => {
      opts.signal.removeEventListener("abort", onAbort);
      conn.end(err === undefined && reader.reusable());
      if (err !== undefined) reject(err);
      else resolve(reader.result());
    };
    const onAbort = () =>
      finish(requestFailed(endpoint, new Error(`stopped after ${reader.bodyBytes} bytes of the body`, { cause: opts.signal.reason })));
    const failed = (err: unknown) => finish(conn.reused && received === 0 ? new StaleConnection("stale") : requestFailed(endpoint, err));
    conn.begin({
      data(chunk) {
        received += chunk.length;
        try {
          if (reader.feed(chunk)) finish(undefined);
        } catch (err) {
          finish(err);
          return false;
        }
        return true;
      },
      error: failed,
      closed() {
        if (conn.reused && received === 0) finish(new StaleConnection("closed"));
        else finish(reader.closed());
      },
    });
    opts.signal.addEventListener("abort", onAbort, { once: true });
    conn.send(requestHead(url, opts));
  });
}

interface Handler {
  /** Bytes of the answer; false stops reading (the exchange is over). */
  data(chunk: Buffer): boolean;
  error(err: unknown): void;
  closed(): void;
}

/**
 * A kept-alive socket of one origin. Its read buffer is lent from the shared
 * pool while a request runs; an idle socket holds none and is unref'd, so it
 * never keeps `once` alive, and closes after IDLE_MS.
 */
class Connection {
  readonly socket: Socket;
  readonly key: string;
  reused = false;
  #handler: Handler | undefined;
  #buffer: Buffer | undefined;
  #connected = false;
  #pending: string | undefined;

  constructor(key: string, url: URL, ca: string | undefined) {
    this.key = key;
    const onread = {
      buffer: () => this.#buffer ?? IDLE_BUFFER,
      callback: (nread: number, buf: Buffer) => this.#read(buf.subarray(0, nread)),
    };
    this.socket = openSocket(url, ca, onread);
    this.socket.once(url.protocol === "https:" ? "secureConnect" : "connect", () => {
      this.#connected = true;
      if (this.#pending !== undefined) this.socket.write(this.#pending);
      this.#pending = undefined;
    });
    this.socket.on("error", (err) => this.#handler?.error(err));
    this.socket.once("close", () => {
      forgetIdle(this);
      this.#release()?.closed();
    });
    this.socket.on("timeout", () => this.socket.destroy());
  }

  begin(handler: Handler): void {
    this.#handler = handler;
    this.#buffer = readBuffers.take();
    this.socket.setTimeout(0);
    this.socket.ref();
  }

  send(head: string): void {
    if (this.#connected) this.socket.write(head);
    else this.#pending = head;
  }

  /** The exchange is over: back to the pool when the answer ended cleanly, else closed. */
  end(keep: boolean): void {
    if (this.#release() === undefined) return;
    if (keep && !this.socket.destroyed && keepIdle(this)) {
      this.reused = true;
      this.socket.setTimeout(IDLE_MS);
      this.socket.unref();
      return;
    }
    this.socket.destroy();
  }

  #read(chunk: Buffer): boolean {
    const handler = this.#handler;
    if (handler === undefined) {
      // Bytes nobody asked for: the connection is out of step; close it.
      this.socket.destroy();
      return false;
    }
    return handler.data(chunk);
  }

  #release(): Handler | undefined {
    const handler = this.#handler;
    this.#handler = undefined;
    if (this.#buffer !== undefined) readBuffers.give(this.#buffer);
    this.#buffer = undefined;
    return handler;
  }
}

// Idle connections by origin and trust; a key with none is deleted, so the map holds only what is idle now.
const idle = new Map<string, Connection[]>();

function poolKey(url: URL, ca: string | undefined): string {
  return url.protocol === "https:" ? `${url.origin}|${trustFor(ca).id}` : url.origin;
}

function takeIdle(key: string): Connection | undefined {
  const list = idle.get(key);
  const conn = list?.pop();
  if (list?.length === 0) idle.delete(key);
  return conn;
}

function keepIdle(conn: Connection): boolean {
  const list = idle.get(conn.key) ?? [];
  if (list.length >= MAX_IDLE_PER_ORIGIN) return false;
  list.push(conn);
  idle.set(conn.key, list);
  return true;
}

function forgetIdle(conn: Connection): void {
  const list = idle.get(conn.key);
  const i = list?.indexOf(conn) ?? -1;
  if (list === undefined || i < 0) return;
  list.splice(i, 1);
  if (list.length === 0) idle.delete(conn.key);
}

/** Idle blob connections, all origins together (tests: they are bounded and expire). */
export function idleBlobConnections(): number {
  let n = 0;
  for (const list of idle.values()) n += list.length;
  return n;
}

type OnRead = { buffer: () => Buffer; callback: (nread: number, buf: Buffer) => boolean };

function openSocket(url: URL, ca: string | undefined, onread: OnRead): Socket {
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  // noDelay: a request is one write, and its answer should not wait on Nagle's algorithm (node:http sets it too).
  if (url.protocol === "http:") return netConnect({ host, port: Number(url.port || 80), noDelay: true, onread });
  // Node's TLSSocket takes onread like net.Socket does; @types/node does not list it for tls.
  const options: ConnectionOptions & { onread: OnRead } = {
    host,
    port: Number(url.port || 443),
    ...(isIP(host) === 0 ? { servername: host } : {}),
    secureContext: trustFor(ca).context,
    onread,
  };
  return tlsConnect(options).setNoDelay(true);
}

function requestHead(url: URL, opts: StreamGetOptions): string {
  const lines = [
    `GET ${url.pathname}${url.search} HTTP/1.1`,
    `Host: ${url.host}`,
    `User-Agent: ${opts.userAgent}`,
    "Accept: */*",
    "Accept-Encoding: identity",
    ...(opts.authorization !== undefined ? [`Authorization: ${opts.authorization}`] : []),
  ];
  return `${lines.join("\r\n")}\r\n\r\n`;
}

type Framing = { kind: "length"; remaining: number } | { kind: "chunked"; decoder: ChunkedDecoder } | { kind: "close" };

/** An HTTP/1.1 response, fed as it arrives: the head, then the body by Content-Length, chunked coding, or until close. */
export class ResponseReader {
  readonly #endpoint: string;
  readonly #onBody: (chunk: Buffer) => void;
  #head: Buffer = Buffer.alloc(0);
  #status = 0;
  #headers: Record<string, string> = {};
  #framing: Framing | undefined;
  #errorBody: Buffer[] = [];
  #errorBytes = 0;
  #done = false;
  /** The answer was not read to its end (an error page cut at 64 KiB) or bytes followed it: the connection is out of step. */
  #unread = false;
  #keepAlive = false;
  bodyBytes = 0;

  constructor(endpoint: string, onBody: (chunk: Buffer) => void) {
    this.#endpoint = endpoint;
    this.#onBody = onBody;
  }

  /** Feed bytes; true once the whole response has arrived. */
  feed(chunk: Buffer): boolean {
    if (this.#done) {
      if (chunk.length > 0) this.#unread = true;
      return true;
    }
    let rest = chunk;
    while (this.#framing === undefined) {
      const body = this.#feedHead(rest);
      if (body === undefined) return false;
      rest = body;
    }
    if (rest.length > 0) {
      if (this.#done) this.#unread = true;
      else this.#feedBody(rest);
    }
    return this.#done;
  }

  /** Whether the connection can carry another request: the answer ended exactly, on HTTP/1.1 keep-alive. */
  reusable(): boolean {
    return this.#done && !this.#unread && this.#keepAlive && this.#framing !== undefined && this.#framing.kind !== "close";
  }

  /** The connection closed: fine when the body ends at close, else the response was cut short. */
  closed(): unknown {
    if (this.#done) return undefined;
    if (this.#framing?.kind === "close") {
      this.#done = true;
      return undefined;
    }
    const declared = this.#framing?.kind === "length" ? ` of ${this.bodyBytes + this.#framing.remaining}` : "";
    const what = this.#framing === undefined ? "before the end of its headers" : `after ${this.bodyBytes}${declared} bytes`;
    return new ProbeError("bad_response", `${this.#endpoint}: response ended ${what}`);
  }

  result(): StreamGetResult {
    return {
      status: this.#status,
      headers: this.#headers,
      bodyBytes: this.bodyBytes,
      errorBody: Buffer.concat(this.#errorBody, this.#errorBytes),
    };
  }

  /** Returns what follows the head once it is complete (a view of the input, used at once), else undefined. */
  #feedHead(chunk: Buffer): Buffer | undefined {
    const joined = this.#head.length === 0 ? chunk : Buffer.concat([this.#head, chunk]);
    const end = joined.indexOf("\r\n\r\n");
    if (end < 0) {
      if (joined.length > HEAD_LIMIT) throw new ProbeError("bad_response", `${this.#endpoint}: response headers over ${HEAD_LIMIT} bytes`);
      // Copied: the chunk is a view of a lent read buffer. Only a head split over reads takes this path.
      this.#head = Buffer.from(joined);
      return undefined;
    }
    this.#parseHead(joined.subarray(0, end).toString("latin1"));
    this.#head = Buffer.alloc(0);
    const rest = joined.subarray(end + 4);
    // 1xx: an interim answer; the real head follows.
    if (this.#status >= 100 && this.#status < 200) return rest.length > 0 ? this.#feedHead(rest) : undefined;
    this.#framing = framingOf(this.#headers, this.#endpoint);
    if (this.#framing.kind === "length" && this.#framing.remaining === 0) this.#done = true;
    return rest;
  }

  #parseHead(text: string): void {
    const [statusLine = "", ...lines] = text.split("\r\n");
    const match = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(statusLine);
    if (!match?.[1])
      throw new ProbeError("bad_response", `${this.#endpoint}: not an HTTP/1.1 status line: ${JSON.stringify(statusLine.slice(0, 100))}`);
    this.#status = Number(match[1]);
    this.#keepAlive = statusLine.startsWith("HTTP/1.1");
    this.#headers = {};
    for (const line of lines) {
      const colon = line.indexOf(":");
      if (colon <= 0) throw new ProbeError("bad_response", `${this.#endpoint}: malformed header line`);
      this.#headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    if (/(^|,)\s*close\s*(,|$)/i.test(this.#headers.connection ?? "")) this.#keepAlive = false;
  }

  #feedBody(chunk: Buffer): void {
    const framing = this.#framing;
    if (framing === undefined || this.#done) return;
    if (framing.kind === "chunked") {
      this.#done = framing.decoder.push(chunk, (data) => this.#deliver(data));
      if (framing.decoder.overrun) this.#unread = true;
      return;
    }
    if (framing.kind === "length") {
      const take = Math.min(chunk.length, framing.remaining);
      if (take < chunk.length) this.#unread = true;
      framing.remaining -= take;
      this.#deliver(chunk.subarray(0, take));
      if (framing.remaining === 0) this.#done = true;
      return;
    }
    this.#deliver(chunk);
  }

  #deliver(data: Buffer): void {
    if (data.length === 0) return;
    this.bodyBytes += data.length;
    if (this.#status === 200) {
      this.#onBody(data);
    } else {
      const keep = data.subarray(0, ERROR_BODY_LIMIT - this.#errorBytes);
      this.#errorBody.push(Buffer.from(keep));
      this.#errorBytes += keep.length;
      // Enough of an error page to quote: the rest is not read.
      if (this.#errorBytes >= ERROR_BODY_LIMIT && !this.#done) {
        this.#done = true;
        this.#unread = true;
      }
    }
  }
}

function framingOf(headers: Record<string, string>, endpoint: string): Framing {
  const te = headers["transfer-encoding"]?.toLowerCase();
  if (te !== undefined && te !== "identity") {
    if (te !== "chunked") throw new ProbeError("bad_response", `${endpoint}: unsupported Transfer-Encoding ${te}`);
    return { kind: "chunked", decoder: new ChunkedDecoder(endpoint) };
  }
  const length = headers["content-length"];
  if (length !== undefined) {
    if (!/^\d+$/.test(length))
      throw new ProbeError("bad_response", `${endpoint}: bad Content-Length ${JSON.stringify(length.slice(0, 40))}`);
    return { kind: "length", remaining: Number(length) };
  }
  return { kind: "close" };
}

type ChunkState = "size" | "data" | "data-end" | "trailer" | "done";

/** HTTP/1.1 chunked transfer coding, decoded across arbitrary splits of the input. */
export class ChunkedDecoder {
  readonly #endpoint: string;
  #state: ChunkState = "size";
  #line = "";
  #remaining = 0;
  /** Bytes followed the final chunk and its trailer. */
  overrun = false;

  constructor(endpoint: string) {
    this.#endpoint = endpoint;
  }

  /** Decode a piece; data is handed to emit as views of the input. True once the final chunk and trailer have arrived. */
  push(input: Buffer, emit: (data: Buffer) => void): boolean {
    let i = 0;
    while (i < input.length && this.#state !== "done") {
      if (this.#state === "data") {
        const take = Math.min(this.#remaining, input.length - i);
        emit(input.subarray(i, i + take));
        i += take;
        this.#remaining -= take;
        if (this.#remaining === 0) this.#state = "data-end";
        continue;
      }
      const nl = input.indexOf(0x0a, i);
      const end = nl < 0 ? input.length : nl + 1;
      this.#line += input.subarray(i, end).toString("latin1");
      i = end;
      if (this.#line.length > 4096) throw new ProbeError("bad_response", `${this.#endpoint}: chunk header over 4096 bytes`);
      if (nl >= 0) this.#endLine(this.#line.replace(/\r?\n$/, ""));
    }
    if (this.#state === "done" && i < input.length) this.overrun = true;
    return this.#state === "done";
  }

  #endLine(line: string): void {
    this.#line = "";
    if (this.#state === "data-end") {
      if (line !== "") throw new ProbeError("bad_response", `${this.#endpoint}: chunk not followed by CRLF`);
      this.#state = "size";
    } else if (this.#state === "size") {
      const size = /^([0-9a-fA-F]{1,12})(?:[ \t]*;.*)?$/.exec(line)?.[1];
      if (size === undefined) throw new ProbeError("bad_response", `${this.#endpoint}: bad chunk size line`);
      this.#remaining = Number.parseInt(size, 16);
      this.#state = this.#remaining === 0 ? "trailer" : "data";
    } else if (this.#state === "trailer" && line === "") {
      this.#state = "done";
    }
  }
}
