import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { loadConfigFile } from "../../../src/config/read.js";
import type { Config } from "../../../src/config/resolve.js";
import { expandRunners, runnerCredentials } from "../../../src/credentials/index.js";
import { InputError } from "../../../src/errors.js";
import { cleanTmp, FIXTURES, helperOpts, tmpDir } from "../../fixtures/credentials/support.js";

afterAll(cleanTmp);

const TOML = join(FIXTURES, "toml");
const MAIN = join(TOML, "config.toml");
const OTHER = join(TOML, "other.toml");
const MALFORMED = join(TOML, "malformed.toml");
const WRONG_TYPE = join(TOML, "wrong-type.toml");
const DAC_VALUE = `{"auths":{"registry.example.jp":{"auth":"Z2l0bGFiK2RlcGxveS10b2tlbi0xNzpkdC1maXh0dXJlLXB3"}}}`;

function writeConfig(yaml: string): Config {
  const file = join(tmpDir(), "ci-prober.yml");
  writeFileSync(file, yaml);
  return loadConfigFile(file, {});
}

describe("expandRunners", () => {
  test("expands every [[runners]] of GitLab Runner's config.toml and runners by hand into exact Runner objects", async () => {
    const dir = tmpDir();
    const dacFile = join(dir, "dac.json");
    writeFileSync(dacFile, `{"auths":{"registry.example.jp":{"auth":"YmFzZTpiYXNlLXB3LTEyMzQ="}}}\n`);
    const config = writeConfig(
      [
        "runners:",
        `  - runner_config: ${MAIN}`,
        "    docker_config: /home/gitlab-runner/.docker/config.json",
        `  - runner_config: ${OTHER}`,
        `  - runner_config: ${MALFORMED}`,
        "  - name: base-runner",
        "    docker_config: /home/gitlab-runner/.docker/config.json",
        `    docker_auth_config_file: ${dacFile}`,
        "    docker_host: unix:///run/docker.sock",
        "    mode: engine",
        "    images: [registry.example.jp/ci/canary:latest]",
        "    interval: 30s",
      ].join("\n"),
    );
    const { runners, errors } = await expandRunners(config);
    expect(runners).toStrictEqual([
      {
        name: "docker-runner-1",
        mode: "direct",
        source: `${MAIN}#runners[0]`,
        dockerHost: "tcp://127.0.0.1:2376",
        images: ["registry.example.jp/ci/base:latest"],
        dockerConfig: "/home/gitlab-runner/.docker/config.json",
        dockerAuthConfig: { value: DAC_VALUE, source: `${MAIN}#runners[0].environment.DOCKER_AUTH_CONFIG` },
        tlsCertPath: "/etc/gitlab-runner/certs/docker",
        executor: "docker",
        pullPolicy: ["always", "if-not-present"],
      },
      {
        name: "shell-runner",
        mode: "direct",
        source: `${MAIN}#runners[1]`,
        dockerHost: "unix:///var/run/docker.sock",
        images: [],
        dockerConfig: "/home/gitlab-runner/.docker/config.json",
        executor: "shell",
      },
      {
        name: "docker-runner-2",
        mode: "direct",
        source: `${MAIN}#runners[2]`,
        dockerHost: "unix:///var/run/docker.sock",
        images: ["alpine:3.20"],
        dockerConfig: "/home/gitlab-runner/.docker/config.json",
        executor: "docker",
        pullPolicy: ["if-not-present"],
      },
      {
        name: "docker-runner-1#2",
        mode: "direct",
        source: `${OTHER}#runners[0]`,
        dockerHost: "unix:///var/run/docker.sock",
        images: ["busybox:1.36"],
        executor: "docker",
      },
      {
        name: "base-runner",
        mode: "engine",
        source: `${config.file}#runners[3]`,
        dockerHost: "unix:///run/docker.sock",
        images: ["registry.example.jp/ci/canary:latest"],
        dockerConfig: "/home/gitlab-runner/.docker/config.json",
        dockerAuthConfig: { value: `{"auths":{"registry.example.jp":{"auth":"YmFzZTpiYXNlLXB3LTEyMzQ="}}}\n`, source: dacFile },
        intervalMs: 30_000,
      },
    ]);
    expect(errors.map((e) => [e instanceof InputError, e.message])).toEqual([
      [true, `${MALFORMED}: line 4 column 24: invalid TOML: control characters are not allowed in strings`],
    ]);
  });

  test("images come from the ci-prober entry, then the top-level images, then [runners.docker].image", async () => {
    const config = writeConfig(
      [
        "images: [registry.example.jp/ci/canary:latest]",
        "runners:",
        `  - runner_config: ${MAIN}`,
        `  - runner_config: ${OTHER}`,
        "    images: [own/image:1]",
      ].join("\n"),
    );
    const { runners } = await expandRunners(config);
    expect(runners.map((r) => [r.name, r.images])).toEqual([
      ["docker-runner-1", ["registry.example.jp/ci/canary:latest"]],
      ["shell-runner", ["registry.example.jp/ci/canary:latest"]],
      ["docker-runner-2", ["registry.example.jp/ci/canary:latest"]],
      ["docker-runner-1#2", ["own/image:1"]],
    ]);
  });

  test("a wrong type for a key GitLab Runner reads, or an unreadable file, is one error naming the file; other files' runners come back", async () => {
    const dir = tmpDir();
    const notAFile = join(dir, "config.toml");
    mkdirSync(notAFile);
    const config = writeConfig(
      ["runners:", `  - runner_config: ${WRONG_TYPE}`, `  - runner_config: ${notAFile}`, `  - runner_config: ${OTHER}`].join("\n"),
    );
    const { runners, errors } = await expandRunners(config);
    expect(runners.map((r) => r.source)).toEqual([`${OTHER}#runners[0]`]);
    expect(errors.map((e) => e.message)).toEqual([
      `${WRONG_TYPE}: runners[0].docker.pull_policy: expected a string or a list of strings`,
      `${notAFile}: cannot read: is a directory`,
    ]);
  });

  test("a DOCKER_AUTH_CONFIG in environment gives a credential whose source is the config.toml key", async () => {
    const config = writeConfig(["runners:", `  - runner_config: ${MAIN}`].join("\n"));
    const { runners } = await expandRunners(config);
    const creds = await runnerCredentials(runners[0]!, helperOpts());
    expect(creds.map((c) => ({ ...c, secret: c.secret?.reveal() }))).toEqual([
      {
        runner: "docker-runner-1",
        registry: "registry.example.jp",
        username: "gitlab+deploy-token-17",
        kind: "deploy_token",
        secretType: "password",
        source: `${MAIN}#runners[0].environment.DOCKER_AUTH_CONFIG#auths["registry.example.jp"]`,
        secret: "dt-fixture-pw",
        path: "registry.example.jp",
        inUse: true,
        shadowedBy: null,
      },
    ]);
  });
});
