import { describe, expect, test } from "vitest";
import { classify } from "../../../src/probes/classify.js";
import { ProbeError } from "../../../src/reasons.js";
import { isRedirect, MAX_REDIRECTS, redirectHop } from "../../../src/redirect.js";

const ENDPOINT = "GET http://127.0.0.1:5000/v2/ci/canary/manifests/latest";
const FROM = {
  endpoint: ENDPOINT,
  origin: "http://127.0.0.1:5000",
  url: new URL("http://127.0.0.1:5000/v2/ci/canary/manifests/latest"),
  hops: 0,
};

describe("redirectHop", () => {
  test.each<[string, string, string, boolean]>([
    [
      "a relative path, on the same origin",
      "/v2/ci/canary/manifests/sha256:ab",
      "http://127.0.0.1:5000/v2/ci/canary/manifests/sha256:ab",
      true,
    ],
    ["a path relative to the answering URL", "other", "http://127.0.0.1:5000/v2/ci/canary/manifests/other", true],
    ["an absolute URL on the same origin", "http://127.0.0.1:5000/x?sig=1", "http://127.0.0.1:5000/x?sig=1", true],
    ["another port", "http://127.0.0.1:5001/blob", "http://127.0.0.1:5001/blob", false],
    ["another scheme of the same host", "https://127.0.0.1:5000/blob", "https://127.0.0.1:5000/blob", false],
    ["another host", "http://localhost:5000/blob", "http://localhost:5000/blob", false],
  ])("%s", (_, location, url, credentials) => {
    const hop = redirectHop(location, FROM);
    expect(hop.url.href).toBe(url);
    expect(hop.credentials).toBe(credentials);
  });

  test("resolves against the URL that answered, and keeps the credentials' origin", () => {
    const hop = redirectHop("/back", { ...FROM, url: new URL("http://127.0.0.1:6000/storage/a"), hops: 2 });
    expect(hop.url.href).toBe("http://127.0.0.1:6000/back");
    expect(hop.credentials).toBe(false);
    expect(redirectHop("http://127.0.0.1:5000/home", { ...FROM, url: new URL("http://127.0.0.1:6000/a"), hops: 3 }).credentials).toBe(true);
  });

  test.each<[string, string, number, string]>([
    ["a Location that is no URL", "http://[::1", 0, `${ENDPOINT}: redirect to an invalid URL`],
    ["a file: URL", "file:///etc/passwd", 0, `${ENDPOINT}: redirect to a file: URL`],
    ["a javascript: URL", "javascript:alert(1)", 0, `${ENDPOINT}: redirect to a javascript: URL`],
    ["one hop more than the maximum", "/next", MAX_REDIRECTS, `${ENDPOINT}: more than 5 redirects`],
  ])("%s is bad_response naming the endpoint", (_, location, hops, message) => {
    let caught: unknown;
    try {
      redirectHop(location, { ...FROM, hops });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ProbeError);
    expect(classify(caught)).toBe("bad_response");
    expect((caught as Error).message).toBe(message);
  });

  test("the last allowed hop is still followed", () => {
    expect(redirectHop("/next", { ...FROM, hops: MAX_REDIRECTS - 1 }).url.pathname).toBe("/next");
  });
});

test.each<[number, boolean]>([
  [301, true],
  [302, true],
  [303, true],
  [307, true],
  [308, true],
  [300, false],
  [304, false],
  [200, false],
  [404, false],
])("isRedirect(%i) is %s", (status, redirect) => {
  expect(isRedirect(status)).toBe(redirect);
});
