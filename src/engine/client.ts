import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type Dockerode from "dockerode";
import { oneLine } from "../errors.js";
import { ProbeError } from "../reasons.js";
import { daemonMessageSchema } from "./schema.js";

export type Docker = Dockerode;

/** Where a runner's Docker engine answers, as gitlab-runner's [runners.docker] host and tls_cert_path say. */
export interface EngineAddress {
  dockerHost: string;
  /** A directory holding ca.pem, cert.pem and key.pem; with a tcp:// host it turns TLS on, as gitlab-runner does. */
  tlsCertPath?: string;
}

// dockerode pulls in grpc and protobuf when it loads (~0.2 s, ~30 MB): only commands that talk to an engine pay for it.
let dockerode: Promise<typeof Dockerode> | undefined;

/** Load dockerode once. Calling it early (without awaiting) overlaps the load with other start-up work. */
export function loadDockerode(): Promise<typeof Dockerode> {
  if (!dockerode) {
    silenceModemDebug(process.env);
    dockerode = import("dockerode").then((m) => m.default);
  }
  return dockerode;
}

/**
 * docker-modem's `debug("modem")` output prints every request's headers —
 * X-Registry-Auth included — straight to stderr, past scrub(). `debug` reads
 * $DEBUG when it loads, so a DEBUG=* or DEBUG=modem set for other libraries
 * gets the modem namespace excluded before dockerode is imported.
 */
export function silenceModemDebug(env: NodeJS.ProcessEnv): void {
  const value = env.DEBUG;
  if (value !== undefined && value !== "" && !value.split(/[\s,]+/).includes("-modem")) env.DEBUG = `${value},-modem`;
}

const clients = new Map<string, Promise<Docker>>();

/** One dockerode client per engine address, reused by every probe of every runner that shares it. */
export function engineFor(address: EngineAddress, signal: AbortSignal): Promise<Docker> {
  const key = `${address.dockerHost}\n${address.tlsCertPath ?? ""}`;
  let client = clients.get(key);
  if (!client) {
    client = createClient(address, signal);
    clients.set(key, client);
    // A failed creation (a missing cert file, an abort) must not stick: the next round tries again.
    client.catch(() => clients.delete(key));
  }
  return client;
}

async function createClient(address: EngineAddress, signal: AbortSignal): Promise<Docker> {
  const options = await clientOptions(address, signal);
  const Docker = await loadDockerode();
  try {
    return new Docker(options);
  } catch (err) {
    // docker-modem reads $DOCKER_HOST while constructing and throws on a malformed one.
    throw new ProbeError("engine_unavailable", `Docker engine ${address.dockerHost}: ${oneLine(err)}`, { cause: err });
  }
}

/**
 * dockerode options for an address. Every connection field is set, even to
 * undefined, because docker-modem merges $DOCKER_HOST and $DOCKER_CERT_PATH
 * under the options it is given: a runner's engine must not silently become
 * the prober's own.
 */
export async function clientOptions(address: EngineAddress, signal: AbortSignal): Promise<Dockerode.DockerOptions> {
  const none = {
    socketPath: undefined,
    host: undefined,
    port: undefined,
    ca: undefined,
    cert: undefined,
    key: undefined,
    timeout: undefined,
  };
  const url = address.dockerHost;
  if (url.startsWith("unix://")) {
    const socketPath = url.slice("unix://".length);
    if (socketPath === "") throw new ProbeError("engine_unavailable", `docker_host ${url}: no socket path`);
    return { ...none, socketPath, protocol: "http" };
  }
  if (url.startsWith("tcp://")) {
    const parsed = new URL(`http://${url.slice("tcp://".length)}`);
    const tls = address.tlsCertPath === undefined ? undefined : await readTlsFiles(address.tlsCertPath, signal);
    const port = parsed.port !== "" ? Number(parsed.port) : tls ? 2376 : 2375;
    return { ...none, host: parsed.hostname, port, protocol: tls ? "https" : "http", ...tls };
  }
  throw new ProbeError("engine_unavailable", `docker_host ${url}: only unix:// and tcp:// engines are supported`);
}

async function readTlsFiles(dir: string, signal: AbortSignal): Promise<{ ca: string; cert: string; key: string }> {
  const read = async (name: string) => {
    const file = join(dir, name);
    try {
      return await readFile(file, { encoding: "utf8", signal });
    } catch (err) {
      if ((err as { name?: string }).name === "AbortError") throw err;
      throw new ProbeError("tls", `tls_cert_path ${file}: cannot read: ${oneLine(err)}`, { cause: err });
    }
  };
  const [ca, cert, key] = await Promise.all([read("ca.pem"), read("cert.pem"), read("key.pem")]);
  return { ca, cert, key };
}

// Errors on the engine's own socket (as opposed to the daemon reporting a registry failure inside an HTTP answer).
const SOCKET_CODES = new Set([
  "ENOENT",
  "ECONNREFUSED",
  "EACCES",
  "ECONNRESET",
  "EPIPE",
  "ENOTSOCK",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
]);

/** An answer from the daemon that was not the one wanted; its message is the daemon's own text. */
export class DaemonError extends Error {
  readonly statusCode: number | undefined;

  constructor(message: string, statusCode?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "DaemonError";
    this.statusCode = statusCode;
  }
}

/**
 * Turn what dockerode threw into an error classify() reads right: a socket
 * failure becomes engine_unavailable (only this code knows the socket is the
 * daemon's; classify maps ECONNREFUSED to `connection` generically), an HTTP
 * error from the daemon becomes a DaemonError carrying the daemon's text
 * without docker-modem's "(HTTP code 500) server error - " prefix. Aborts pass
 * through unchanged.
 */
export function engineError(err: unknown, dockerHost: string, what: string): unknown {
  if (err instanceof ProbeError || !(err instanceof Error)) return err;
  if (err.name === "AbortError") return err;
  const code = (err as { code?: unknown }).code;
  const statusCode = (err as { statusCode?: unknown }).statusCode;
  if (typeof statusCode === "number") {
    const parsed = daemonMessageSchema.safeParse((err as { json?: unknown }).json);
    const text = parsed.success ? parsed.data.message : err.message.replace(/^\(HTTP code \d+\) [^-]*- /, "").trim();
    return new DaemonError(`${what}: ${text}`, statusCode, { cause: err });
  }
  if (typeof code === "string" && SOCKET_CODES.has(code)) {
    return new ProbeError("engine_unavailable", `Docker engine ${dockerHost} unavailable: ${oneLine(err)}`, { cause: err });
  }
  return err;
}
