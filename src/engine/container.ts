import { withDeadline } from "../deadline.js";
import { ProbeError } from "../reasons.js";
import { engineError, engineFor, type Docker, type EngineAddress } from "./client.js";
import { containerListSchema, waitResponseSchema } from "./schema.js";

/** Every canary container carries this label, so leftovers of a crash can be found and removed. */
export const CANARY_LABEL = "io.ci-prober.canary";
/** The runner a canary container was started for. */
export const RUNNER_LABEL = "io.ci-prober.runner";

// Cleanup runs after the probe's own deadline has passed, so it gets a budget of its own.
const CLEANUP_MS = 10_000;
// Enough of a canary's output to find an expected line and explain a failure.
const LOG_TAIL_LINES = 1000;

export interface ContainerSpec {
  image: string;
  command: string[];
  network: string;
  runner: string;
}

/** A created canary container; remove() is safe to call more than once. */
export interface CanaryContainer {
  id: string;
  start(signal: AbortSignal): Promise<void>;
  /** Wait for it to exit; the exit code. */
  wait(signal: AbortSignal): Promise<number>;
  /** Its output lines, stdout and stderr demultiplexed and interleaved in order. */
  output(signal: AbortSignal): Promise<string[]>;
  /** Kill it if it runs, then remove it, under a budget of its own. */
  remove(): Promise<void>;
}

/** POST /containers/create for a canary job: labelled as ci-prober's, no TTY, the configured network. */
export async function createCanaryContainer(
  docker: Docker,
  dockerHost: string,
  spec: ContainerSpec,
  signal: AbortSignal,
): Promise<CanaryContainer> {
  signal.throwIfAborted();
  let id: string;
  try {
    const created = await docker.createContainer({
      Image: spec.image,
      Cmd: spec.command,
      Labels: { [CANARY_LABEL]: "true", [RUNNER_LABEL]: spec.runner },
      Tty: false,
      HostConfig: { NetworkMode: spec.network },
      abortSignal: signal,
    });
    id = created.id;
  } catch (err) {
    throw engineError(err, dockerHost, `create canary container from ${spec.image}`);
  }
  return canaryContainer(docker, dockerHost, id);
}

function canaryContainer(docker: Docker, dockerHost: string, id: string): CanaryContainer {
  const container = docker.getContainer(id);
  const short = id.slice(0, 12);
  let removed = false;
  return {
    id,
    async start(signal) {
      signal.throwIfAborted();
      try {
        await container.start({ abortSignal: signal });
      } catch (err) {
        throw engineError(err, dockerHost, `start canary container ${short}`);
      }
    },
    async wait(signal) {
      signal.throwIfAborted();
      let answer: unknown;
      try {
        answer = await container.wait({ abortSignal: signal });
      } catch (err) {
        throw engineError(err, dockerHost, `wait for canary container ${short}`);
      }
      const parsed = waitResponseSchema.safeParse(answer);
      if (!parsed.success)
        throw new ProbeError("bad_response", `wait for canary container ${short}: the engine's answer has no StatusCode`);
      if (parsed.data.Error?.Message) throw new ProbeError("container_failed", `canary container ${short}: ${parsed.data.Error.Message}`);
      return parsed.data.StatusCode;
    },
    async output(signal) {
      signal.throwIfAborted();
      let raw: unknown;
      try {
        raw = await container.logs({ stdout: true, stderr: true, follow: false, tail: LOG_TAIL_LINES, abortSignal: signal });
      } catch (err) {
        throw engineError(err, dockerHost, `logs of canary container ${short}`);
      }
      return outputLines(demultiplex(Buffer.isBuffer(raw) ? raw : Buffer.from(String(raw))));
    },
    async remove() {
      if (removed) return;
      // force kills a running container (SIGKILL) before removing it, as `docker rm -f` does.
      await withDeadline(CLEANUP_MS, undefined, (signal) => removeContainer(docker, dockerHost, id, signal));
      removed = true;
    },
  };
}

async function removeContainer(docker: Docker, dockerHost: string, id: string, signal: AbortSignal): Promise<void> {
  try {
    await docker.getContainer(id).remove({ force: true, v: true, abortSignal: signal });
  } catch (err) {
    if ((err as { statusCode?: unknown }).statusCode === 404) return;
    throw engineError(err, dockerHost, `remove canary container ${id.slice(0, 12)}`);
  }
}

/**
 * Split a non-TTY log stream into its payload: frames of an 8-byte header
 * (stream type, 3 zero bytes, big-endian length) and that many bytes, stdout
 * (1) and stderr (2) kept in the order the daemon wrote them.
 */
export function demultiplex(raw: Buffer): string {
  const parts: Buffer[] = [];
  let at = 0;
  while (at + 8 <= raw.length) {
    const type = raw[at];
    if (type !== 0 && type !== 1 && type !== 2) {
      // Not multiplexed (a TTY container): the rest is plain output.
      parts.push(raw.subarray(at));
      at = raw.length;
      break;
    }
    const length = raw.readUInt32BE(at + 4);
    parts.push(raw.subarray(at + 8, at + 8 + length));
    at += 8 + length;
  }
  if (at < raw.length) parts.push(raw.subarray(at));
  return Buffer.concat(parts).toString("utf8");
}

function outputLines(text: string): string[] {
  return text.split(/\r?\n/).filter((line) => line.trim() !== "");
}

/**
 * Remove every container labelled as a ci-prober canary on an engine, running
 * or not: leftovers of a crash at start, and the canary in flight at shutdown.
 * Returns how many were removed.
 */
export async function removeCanaryContainers(dockerHost: string, signal: AbortSignal, tlsCertPath?: string): Promise<number> {
  const address: EngineAddress = { dockerHost, ...(tlsCertPath !== undefined ? { tlsCertPath } : {}) };
  const docker = await engineFor(address, signal);
  let answer: unknown;
  try {
    answer = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${CANARY_LABEL}=true`] }), abortSignal: signal });
  } catch (err) {
    throw engineError(err, dockerHost, "list canary containers");
  }
  const parsed = containerListSchema.safeParse(answer);
  if (!parsed.success) throw new ProbeError("bad_response", "list canary containers: the engine's answer is not a container list");
  for (const { Id } of parsed.data) await removeContainer(docker, dockerHost, Id, signal);
  return parsed.data.length;
}
