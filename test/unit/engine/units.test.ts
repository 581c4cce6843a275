import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { describe, expect, test } from "vitest";
import { engineAuth, registryAuthHeader } from "../../../src/engine/auth.js";
import { clientOptions, DaemonError, engineError } from "../../../src/engine/client.js";
import { demultiplex } from "../../../src/engine/container.js";
import { scanProgress } from "../../../src/engine/pull.js";
import { classify } from "../../../src/probes/classify.js";
import { ProbeError } from "../../../src/reasons.js";
import { Secret } from "../../../src/secret.js";
import type { Credential } from "../../../src/types.js";

const never = new AbortController().signal;

describe("daemon error texts", () => {
  test.each([
    ['Get "http://127.0.0.1:5000/v2/": unauthorized: HTTP Basic: Access denied', "unauthorized"],
    ["login attempt to http://127.0.0.1:5000/v2/ failed with status: 401 Unauthorized", "unauthorized"],
    ['Head "https://r.example.jp/v2/ci/canary/manifests/latest": no basic auth credentials', "unauthorized"],
    [
      "pull access denied for ci/canary, repository does not exist or may require 'docker login': denied: requested access to the resource is denied",
      "forbidden",
    ],
    [
      "pull access denied for ci/canary, repository does not exist or may require 'docker login': manifest unknown: manifest unknown",
      "not_found",
    ],
    ["pull access denied for ci/canary, repository does not exist or may require 'docker login'", "forbidden"],
    ["denied: requested access to the resource is denied", "forbidden"],
    ["manifest for r.example.jp/ci/canary:nope not found: manifest unknown: manifest unknown", "not_found"],
    ["unknown blob", "not_found"],
    ["toomanyrequests: You have reached your pull rate limit.", "rate_limited"],
    ['Get "https://127.0.0.1:5000/v2/": http: server gave HTTP response to HTTPS client', "tls"],
    ['Get "https://r.example.jp/v2/": x509: certificate signed by unknown authority', "tls"],
    ['Get "https://r.example.jp/v2/": net/http: TLS handshake timeout', "timeout"],
    ['Get "https://r.example.jp/v2/": dial tcp: lookup r.example.jp on 127.0.0.53:53: no such host', "dns"],
    ['Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused', "connection"],
    ['Get "https://r.example.jp/v2/": context deadline exceeded (Client.Timeout exceeded while awaiting headers)', "timeout"],
    ["Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?", "engine_unavailable"],
  ])("%s -> %s", (text, reason) => {
    expect(classify(new DaemonError(`pull r.example.jp/ci/canary:latest: ${text}`, 500))).toBe(reason);
  });

  test("a daemon answer with no known text falls back to its HTTP status", () => {
    expect(classify(new DaemonError("create canary container: something odd", 500))).toBe("server_error");
    expect(classify(new DaemonError("start canary container: No such container: abc", 404))).toBe("not_found");
  });
});

describe("engineError", () => {
  test("a socket error on the engine becomes engine_unavailable naming the engine", () => {
    const err = Object.assign(new Error("connect ECONNREFUSED /run/docker.sock"), { code: "ECONNREFUSED" });
    const wrapped = engineError(err, "unix:///run/docker.sock", "pull x");
    expect(wrapped).toBeInstanceOf(ProbeError);
    expect([classify(wrapped), (wrapped as Error).message]).toEqual([
      "engine_unavailable",
      "Docker engine unix:///run/docker.sock unavailable: connect ECONNREFUSED /run/docker.sock",
    ]);
  });

  test("docker-modem's HTTP error becomes the daemon's own text with the status kept", () => {
    const err = Object.assign(new Error('(HTTP code 500) server error - Head "http://h/v2/": unauthorized: x '), {
      statusCode: 500,
      json: { message: 'Head "http://h/v2/": unauthorized: x' },
    });
    const wrapped = engineError(err, "unix:///s", "pull h/ci:1") as DaemonError;
    expect([wrapped.message, wrapped.statusCode, classify(wrapped)]).toEqual([
      'pull h/ci:1: Head "http://h/v2/": unauthorized: x',
      500,
      "unauthorized",
    ]);
  });
});

describe("X-Registry-Auth", () => {
  const cred = (over: Partial<Credential>): Credential => ({
    runner: "r",
    registry: "127.0.0.1:5000",
    username: "bob",
    secretType: "password",
    kind: "unknown",
    source: "f#k",
    secret: new Secret("bob-secret-1"),
    ...over,
  });

  test("is padded base64url of the AuthConfig with serveraddress without scheme", () => {
    const header = registryAuthHeader(engineAuth(cred({})));
    expect(header).not.toMatch(/[+/]/);
    expect(header.length % 4).toBe(0);
    expect(JSON.parse(Buffer.from(header, "base64url").toString())).toEqual({
      username: "bob",
      password: "bob-secret-1",
      serveraddress: "127.0.0.1:5000",
    });
  });

  test("an identity token goes as identitytoken, a helper's <token> user is dropped", () => {
    expect(engineAuth(cred({ secretType: "identity_token", secret: new Secret("id-token-xyz") }))).toEqual({
      username: "bob",
      identitytoken: "id-token-xyz",
      serveraddress: "127.0.0.1:5000",
    });
    expect(engineAuth(cred({ secretType: "helper", username: "<token>", secret: new Secret("id-token-xyz") }))).toEqual({
      identitytoken: "id-token-xyz",
      serveraddress: "127.0.0.1:5000",
    });
  });

  test("a credential that could not be read throws its own reason", () => {
    const { secret: _unread, ...unread } = cred({ error: { reason: "credential_invalid", message: "f#k: auth does not decode" } });
    expect(() => engineAuth(unread)).toThrow(new ProbeError("credential_invalid", "f#k: auth does not decode"));
  });
});

describe("scanProgress", () => {
  const stream = (...events: object[]) =>
    Readable.from(
      events
        .map((e) => `${JSON.stringify(e)}\r\n`)
        .join("")
        .match(/[\s\S]{1,37}/g) ?? [],
    );

  test("counts the last current per layer, or its total once the download completes", async () => {
    const result = await scanProgress(
      stream(
        { status: "Pulling from ci/canary", id: "latest" },
        { status: "Downloading", progressDetail: { current: 100, total: 500 }, id: "a" },
        { status: "Download complete", progressDetail: {}, id: "a" },
        { status: "Downloading", progressDetail: { current: 70, total: 90 }, id: "b" },
        { status: "Already exists", progressDetail: {}, id: "c" },
        { status: "Extracting", progressDetail: { current: 500, total: 500 }, id: "a" },
        { status: "Status: Downloaded newer image for ci/canary:latest" },
      ),
      "ci/canary:latest",
    );
    expect(result).toEqual({ bytes: 570 });
  });

  test("an error event after successful ones rejects with the daemon's text", async () => {
    const scan = scanProgress(
      stream(
        { status: "Pulling fs layer", id: "a" },
        { status: "Downloading", progressDetail: { current: 1, total: 2 }, id: "a" },
        { errorDetail: { message: "toomanyrequests: slow down" }, error: "toomanyrequests: slow down" },
      ),
      "ci/canary:latest",
    );
    await expect(scan).rejects.toThrow(new DaemonError("pull ci/canary:latest: toomanyrequests: slow down"));
    expect(classify(await scan.catch((e: unknown) => e))).toBe("rate_limited");
  });

  test("a line that is not JSON is a bad_response", async () => {
    const scan = scanProgress(Readable.from(['{"status":"ok"}\n', "<html>\n"]), "x:1");
    expect(classify(await scan.catch((e: unknown) => e))).toBe("bad_response");
  });
});

test("demultiplex joins stdout and stderr frames in order", () => {
  const frame = (type: number, text: string) => {
    const body = Buffer.from(text);
    const header = Buffer.alloc(8);
    header.writeUInt8(type, 0);
    header.writeUInt32BE(body.length, 4);
    return Buffer.concat([header, body]);
  };
  expect(demultiplex(Buffer.concat([frame(1, "out 1\n"), frame(2, "err 1\n"), frame(1, "out 2\n")]))).toBe("out 1\nerr 1\nout 2\n");
});

describe("clientOptions", () => {
  test("a unix socket ignores $DOCKER_HOST's fields by setting them all", async () => {
    expect(await clientOptions({ dockerHost: "unix:///run/user/docker.sock" }, never)).toEqual({
      socketPath: "/run/user/docker.sock",
      host: undefined,
      port: undefined,
      ca: undefined,
      cert: undefined,
      key: undefined,
      timeout: undefined,
      protocol: "http",
    });
  });

  test("tcp with tls_cert_path speaks TLS with its ca.pem, cert.pem and key.pem", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ci-prober-tls-"));
    for (const name of ["ca.pem", "cert.pem", "key.pem"]) writeFileSync(join(dir, name), `${name} text`);
    const opts = await clientOptions({ dockerHost: "tcp://127.0.0.1:2376", tlsCertPath: dir }, never);
    expect([opts.host, opts.port, opts.protocol, opts.ca, opts.cert, opts.key]).toEqual([
      "127.0.0.1",
      2376,
      "https",
      "ca.pem text",
      "cert.pem text",
      "key.pem text",
    ]);
    expect((await clientOptions({ dockerHost: "tcp://127.0.0.1:2375" }, never)).protocol).toBe("http");
  });

  test("a missing certificate file is a tls failure naming the file; ssh:// is refused", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ci-prober-tls-"));
    for (const name of ["cert.pem", "key.pem"]) writeFileSync(join(dir, name), `${name} text`);
    await expect(clientOptions({ dockerHost: "tcp://127.0.0.1:2376", tlsCertPath: dir }, never)).rejects.toThrow(
      new ProbeError(
        "tls",
        `tls_cert_path ${join(dir, "ca.pem")}: cannot read: ENOENT: no such file or directory, open '${join(dir, "ca.pem")}'`,
      ),
    );
    await expect(clientOptions({ dockerHost: "ssh://me@127.0.0.1" }, never)).rejects.toThrow(
      new ProbeError("engine_unavailable", "docker_host ssh://me@127.0.0.1: only unix:// and tcp:// engines are supported"),
    );
  });
});
