import { addAbortSignal, type Readable } from "node:stream";
import { formatImageRef, parseImageRef } from "../image.js";
import { jsonWithSchema } from "../json.js";
import { engineError, DaemonError, type Docker } from "./client.js";
import { registryAuthHeader, type EngineAuth } from "./auth.js";
import { progressEventSchema, type ProgressEvent } from "./schema.js";

export interface PullOptions {
  signal: AbortSignal;
  /** Remove the image first so its layers are really fetched. */
  fresh?: boolean;
  /** Step-by-step log of the probe. */
  step?: (message: string) => void;
}

/**
 * POST /images/create with the runner's credential, reading the progress
 * stream to its end. The daemon answers 200 as soon as it starts streaming,
 * so a failure after that (a denied layer, a digest mismatch) arrives only as
 * an `error` event inside the stream.
 */
export async function pullImage(
  docker: Docker,
  dockerHost: string,
  image: string,
  auth: EngineAuth | undefined,
  opts: PullOptions,
): Promise<{ bytes: number }> {
  const ref = parseImageRef(image);
  const name = formatImageRef(ref);
  if (opts.fresh) await removeImage(docker, dockerHost, name, opts.signal, opts.step);
  opts.signal.throwIfAborted();
  const query = {
    fromImage: ref.registry === "docker.io" ? ref.repository : `${ref.registry}/${ref.repository}`,
    tag: ref.digest ?? ref.tag ?? "latest",
    abortSignal: opts.signal,
  };
  let stream: NodeJS.ReadableStream;
  try {
    stream = auth ? await docker.createImage({ key: registryAuthHeader(auth) }, query) : await docker.createImage(query);
  } catch (err) {
    throw engineError(err, dockerHost, `pull ${name}`);
  }
  opts.step?.(
    `POST /images/create ${name}${auth ? ` as ${auth.username ?? "<identity token>"}` : " anonymously"} -> 200, reading progress`,
  );
  try {
    // docker-modem ties the signal to the request only; once the answer streams, aborting must destroy it too.
    return await scanProgress(addAbortSignal(opts.signal, stream as Readable), name);
  } catch (err) {
    throw engineError(err, dockerHost, `pull ${name}`);
  }
}

/**
 * Read a progress stream to its end. Every event is checked for an error
 * (dockerode's followProgress reports success even when the stream carries
 * one). Bytes fetched per layer: the last `current` of its "Downloading"
 * events, or its `total` once "Download complete" arrives.
 */
export async function scanProgress(stream: AsyncIterable<Buffer | string>, name: string): Promise<{ bytes: number }> {
  const layers = new Map<string, { current: number; total: number }>();
  let rest = "";
  for await (const chunk of stream) {
    const lines = (rest + chunk.toString()).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) countEvent(parseEvent(line, name), layers, name);
  }
  countEvent(parseEvent(rest, name), layers, name);
  let bytes = 0;
  for (const layer of layers.values()) bytes += layer.current;
  return { bytes };
}

function parseEvent(line: string, name: string): ProgressEvent | undefined {
  const text = line.trim();
  if (text === "") return undefined;
  return jsonWithSchema(text, progressEventSchema, {
    notJson: `pull ${name}: the progress stream carried a line that is not JSON`,
    badShape: () => `pull ${name}: the progress stream carried an event of an unknown shape`,
  });
}

function countEvent(event: ProgressEvent | undefined, layers: Map<string, { current: number; total: number }>, name: string): void {
  if (!event) return;
  const error = event.error ?? event.errorDetail?.message;
  if (error !== undefined) throw new DaemonError(`pull ${name}: ${error}`);
  if (event.id === undefined) return;
  const layer = layers.get(event.id) ?? { current: 0, total: 0 };
  if (event.status === "Downloading") {
    layer.current = event.progressDetail?.current ?? layer.current;
    layer.total = event.progressDetail?.total ?? layer.total;
    layers.set(event.id, layer);
  } else if (event.status === "Download complete" && layers.has(event.id)) {
    layer.current = Math.max(layer.current, layer.total);
  }
}

/** Remove an image so the next pull fetches its layers; an image that is not there is fine. */
export async function removeImage(
  docker: Docker,
  dockerHost: string,
  name: string,
  signal: AbortSignal,
  step?: (message: string) => void,
): Promise<void> {
  signal.throwIfAborted();
  try {
    await docker.getImage(name).remove({ force: true, abortSignal: signal });
    step?.(`DELETE /images/${name} -> removed`);
  } catch (err) {
    if ((err as { statusCode?: unknown }).statusCode === 404) {
      step?.(`DELETE /images/${name} -> not present`);
      return;
    }
    throw engineError(err, dockerHost, `remove image ${name}`);
  }
}
