import { describe, expect, test } from "vitest";
import { cleanTrace, firstErrorLine } from "../../../src/gitlab/trace.js";
import { registerSecret } from "../../../src/secret.js";

const ESC = "\x1b";

describe("job traces", () => {
  test("ANSI codes and section markers are removed, and a carriage return keeps only what follows it", () => {
    const trace =
      `${ESC}[0KRunning with gitlab-runner 17.5.0 (66a723c3)${ESC}[0;m\n` +
      `${ESC}[0Ksection_start:1732700000:prepare_executor[collapsed=true]\r${ESC}[0K${ESC}[0K${ESC}[36;1mPreparing the "docker" executor${ESC}[0;m\n` +
      `Downloading 10%\rDownloading 100%\r\n` +
      `${ESC}[0Ksection_end:1732700001:prepare_executor\r${ESC}[0K\n`;
    expect(cleanTrace(trace)).toEqual([
      "Running with gitlab-runner 17.5.0 (66a723c3)",
      'Preparing the "docker" executor',
      "Downloading 100%",
      "",
      "",
    ]);
  });

  test("the Docker executor's pull failure gives its WARNING line, the first that explains it", () => {
    const daemon =
      'Error response from daemon: Head "http://127.0.0.1:5000/v2/ci/canary/manifests/latest": unauthorized: HTTP Basic: Access denied';
    const trace =
      `${ESC}[0KPulling docker image 127.0.0.1:5000/ci/canary:latest ...${ESC}[0;m\n` +
      `${ESC}[0;33mWARNING: Failed to pull image with policy "always": ${daemon} (manager.go:250:0s)${ESC}[0;m\n` +
      `${ESC}[31;1mERROR: Job failed: failed to pull image "127.0.0.1:5000/ci/canary:latest" with specified policies [always]: ${daemon} (manager.go:250:0s)${ESC}[0;m\n`;
    expect(firstErrorLine(trace)).toBe(`WARNING: Failed to pull image with policy "always": ${daemon} (manager.go:250:0s)`);
  });

  test("a pull WARNING explains the failure even when its daemon text matches nothing else", () => {
    const daemon = "Error response from daemon: manifest for 127.0.0.1:5000/ci/canary:nope not found: manifest unknown: manifest unknown";
    const trace =
      `${ESC}[0;33mWARNING: Failed to pull image with policy "always": ${daemon} (manager.go:250:0s)${ESC}[0;m\n` +
      `${ESC}[31;1mERROR: Job failed: failed to pull image "127.0.0.1:5000/ci/canary:nope" with specified policies [always]: ${daemon} (manager.go:250:0s)${ESC}[0;m\n`;
    expect(firstErrorLine(trace)).toBe(`WARNING: Failed to pull image with policy "always": ${daemon} (manager.go:250:0s)`);
  });

  test("other explaining lines: ERROR:, unauthorized:, pull access denied; other warnings are skipped", () => {
    expect(firstErrorLine(`WARNING: Cache is disabled\n${ESC}[31;1mERROR: Job failed: exit code 1${ESC}[0;m\n`)).toBe(
      "ERROR: Job failed: exit code 1",
    );
    expect(
      firstErrorLine('$ docker login\nError response from daemon: Get "https://r.example/v2/": unauthorized: authentication required\n'),
    ).toBe('Error response from daemon: Get "https://r.example/v2/": unauthorized: authentication required');
    expect(
      firstErrorLine(
        "Error response from daemon: pull access denied for ci/canary, repository does not exist or may require 'docker login'\n",
      ),
    ).toBe("Error response from daemon: pull access denied for ci/canary, repository does not exist or may require 'docker login'");
    expect(firstErrorLine("all fine\nJob succeeded\n")).toBeUndefined();
  });

  test("a registered secret inside the explaining line is scrubbed", () => {
    registerSecret("trace-secret-5f1c9a");
    expect(firstErrorLine("ERROR: Job failed: login as bob with trace-secret-5f1c9a failed\n")).toBe(
      "ERROR: Job failed: login as bob with [redacted] failed",
    );
  });
});
