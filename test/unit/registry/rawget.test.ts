import { describe, expect, test } from "vitest";
import { ProbeError } from "../../../src/reasons.js";
import { ChunkedDecoder, ResponseReader } from "../../../src/registry/rawget.js";

const ENDPOINT = "GET http://127.0.0.1:5000/v2/x/blobs/sha256:0";

/** Feed a response in pieces of `step` bytes; the body handed out, and whether it completed. */
function readInSteps(raw: Buffer, step: number): { body: string; done: boolean; status: number; reader: ResponseReader } {
  const parts: Buffer[] = [];
  const reader = new ResponseReader(ENDPOINT, (chunk) => parts.push(Buffer.from(chunk)));
  let done = false;
  for (let at = 0; at < raw.length && !done; at += step) done = reader.feed(raw.subarray(at, at + step));
  return { body: Buffer.concat(parts).toString(), done, status: reader.result().status, reader };
}

const CHUNKED = Buffer.from(
  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/octet-stream\r\n\r\n" +
    "5\r\nhello\r\n1;ext=1\r\n \r\nb\r\nchunked wor\r\n2\r\nld\r\n0\r\nX-Trailer: 1\r\n\r\n",
);

describe("ResponseReader", () => {
  test("decodes a chunked body split at every possible byte boundary", () => {
    for (let step = 1; step <= CHUNKED.length; step++) {
      const { body, done, status } = readInSteps(CHUNKED, step);
      expect({ step, body, done, status }).toEqual({ step, body: "hello chunked world", done: true, status: 200 });
    }
  });

  test("reads a Content-Length body and stops at its length", () => {
    const raw = Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    for (const step of [1, 3, raw.length]) expect(readInSteps(raw, step)).toMatchObject({ body: "hello", done: true });
  });

  test("skips a 100 Continue before the real answer", () => {
    const raw = Buffer.from("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    expect(readInSteps(raw, 7)).toMatchObject({ body: "ok", done: true, status: 200 });
  });

  test("keeps a non-200 body for the error message instead of handing it out", () => {
    const raw = Buffer.from('HTTP/1.1 404 Not Found\r\nContent-Length: 28\r\n\r\n{"errors":[{"code":"BLOB"}]}');
    const { body, done, reader } = readInSteps(raw, 10);
    expect({ body, done }).toEqual({ body: "", done: true });
    expect(reader.result().errorBody.toString()).toBe('{"errors":[{"code":"BLOB"}]}');
  });

  test("reports a body cut short of its Content-Length as bad_response with the counts", () => {
    const { reader, done } = readInSteps(Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhell"), 100);
    expect(done).toBe(false);
    const err = reader.closed();
    expect(err).toBeInstanceOf(ProbeError);
    expect((err as ProbeError).reason).toBe("bad_response");
    expect((err as ProbeError).message).toBe(`${ENDPOINT}: response ended after 4 of 10 bytes`);
  });

  test("ends a body with neither length nor chunking at close", () => {
    const { reader, body } = readInSteps(Buffer.from("HTTP/1.0 200 OK\r\n\r\nuntil close"), 4);
    expect(reader.closed()).toBeUndefined();
    expect(body).toBe("until close");
  });

  test("rejects what is not an HTTP/1.x status line as bad_response", () => {
    const reader = new ResponseReader(ENDPOINT, () => undefined);
    expect(() => reader.feed(Buffer.from("SSH-2.0-OpenSSH_9.2\r\n\r\n"))).toThrow(
      `${ENDPOINT}: not an HTTP/1.1 status line: "SSH-2.0-OpenSSH_9.2"`,
    );
  });
});

describe("ChunkedDecoder", () => {
  test("rejects a chunk size that is not hex", () => {
    const decoder = new ChunkedDecoder(ENDPOINT);
    expect(() => decoder.push(Buffer.from("zz\r\n"), () => undefined)).toThrow(`${ENDPOINT}: bad chunk size line`);
  });
});
