import { afterAll, expect, inject, test, vi } from "vitest";
import { engineAuth, registryAuthHeader } from "../../../src/engine/auth.js";
import { engineFor } from "../../../src/engine/client.js";
import { pullImage } from "../../../src/engine/pull.js";
import { Secret } from "../../../src/secret.js";

// Its own file: vitest runs each file in a fresh process, so dockerode (and
// `debug`) load here for the first time, with DEBUG already set.
const services = inject("services");
const previous = process.env.DEBUG;
afterAll(() => {
  if (previous === undefined) delete process.env.DEBUG;
  else process.env.DEBUG = previous;
});

test("with DEBUG=* docker-modem's request dump, X-Registry-Auth included, never reaches stderr", async () => {
  process.env.DEBUG = "*";
  const written: string[] = [];
  const spy = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  });
  try {
    const password = services.htpasswd.users.alice ?? "";
    const auth = engineAuth({
      runner: "r",
      registry: services.htpasswd.host,
      username: "alice",
      secretType: "password",
      kind: "unknown",
      source: "f#k",
      secret: new Secret(password),
    });
    const signal = AbortSignal.timeout(30_000);
    const docker = await engineFor({ dockerHost: services.dockerHost }, signal);
    await pullImage(docker, services.dockerHost, services.htpasswd.image, auth, { signal });
    const text = written.join("");
    expect(text.includes(registryAuthHeader(auth))).toBe(false);
    expect(text.includes(password)).toBe(false);
    expect(text.includes("modem Sending")).toBe(false);
    expect(process.env.DEBUG).toBe("*,-modem");
  } finally {
    spy.mockRestore();
  }
});
