import { describe, expect, test } from "vitest";
import { ProbeError } from "../../../src/reasons.js";
import { registryOrigin, registryScheme } from "../../../src/registry/client.js";
import { DOCKER_MANIFEST, OCI_INDEX, parseManifest, parsePlatform } from "../../../src/registry/manifest.js";

describe("where a registry is spoken to", () => {
  test("Docker Hub's key docker.io is served at registry-1.docker.io over HTTPS", () => {
    expect(registryScheme("docker.io", undefined)).toBe("https");
    expect(registryOrigin("docker.io", "https").href).toBe("https://registry-1.docker.io/");
  });

  test("plain HTTP for a registry marked insecure and for 127.0.0.0/8 and ::1, HTTPS for any other", () => {
    expect(registryScheme("10.0.0.5:5000", { insecure: true })).toBe("http");
    expect(registryScheme("127.0.0.1:5000", undefined)).toBe("http");
    expect(registryScheme("127.3.4.5", undefined)).toBe("http");
    expect(registryScheme("[::1]:5000", undefined)).toBe("http");
    expect(registryScheme("registry.example.jp", { insecure: false })).toBe("https");
    expect(registryOrigin("registry.example.jp:8443", "https").href).toBe("https://registry.example.jp:8443/");
  });
});

describe("parseManifest", () => {
  const image = { schemaVersion: 2, config: { digest: `sha256:${"a".repeat(64)}`, size: 1 }, layers: [] };

  test("takes the media type from the body when the Content-Type is generic", () => {
    const body = Buffer.from(JSON.stringify({ ...image, mediaType: DOCKER_MANIFEST }));
    expect(parseManifest(body, "application/json", "GET x")).toMatchObject({ kind: "image", mediaType: DOCKER_MANIFEST });
  });

  test("recognises an OCI index by its shape when neither header nor body names a type", () => {
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [] }));
    expect(parseManifest(body, undefined, "GET x")).toMatchObject({ kind: "index", mediaType: OCI_INDEX });
  });

  test("refuses a schema 1 manifest as bad_response naming its type", () => {
    const type = "application/vnd.docker.distribution.manifest.v1+prettyjws";
    const err = (() => {
      try {
        parseManifest(Buffer.from(JSON.stringify({ schemaVersion: 1 })), type, "GET x");
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ProbeError);
    expect((err as ProbeError).reason).toBe("bad_response");
    expect((err as ProbeError).message).toBe(`GET x: unsupported manifest media type ${type}`);
  });

  test("names the first invalid field of a malformed manifest", () => {
    const body = Buffer.from(JSON.stringify({ ...image, config: { digest: "nope", size: 1 } }));
    expect(() => parseManifest(body, DOCKER_MANIFEST, "GET x")).toThrow(
      `GET x: invalid ${DOCKER_MANIFEST} at config.digest: expected a digest like sha256:…`,
    );
  });
});

describe("parsePlatform", () => {
  test("reads os/arch and an optional variant", () => {
    expect(parsePlatform("linux/amd64")).toEqual({ os: "linux", architecture: "amd64" });
    expect(parsePlatform("linux/arm64/v8")).toEqual({ os: "linux", architecture: "arm64", variant: "v8" });
  });
});
