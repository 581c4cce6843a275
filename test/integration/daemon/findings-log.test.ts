import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, inject, test } from "vitest";
import { startDaemonProc, waitFor } from "../../helpers/daemon.js";
import { tempDir, writeDockerConfig } from "../../helpers/fixtures.js";
import { freePort } from "../../services/procs.js";

const services = inject("services");
const HELPERS = fileURLToPath(new URL("../../fixtures/credentials/bin", import.meta.url));

interface Line {
  level: string;
  msg: string;
  error?: string;
}

function lines(log: string): Line[] {
  return log
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Line);
}

// A runner's broken sources are findings (warn), never errors of the daemon; and SIGTERM while a
// re-plan waits on a hanging helper stops cleanly, with no error line about the abort.
test("helper and config.json failures are logged once at warn; SIGTERM mid-re-plan logs no error", async () => {
  const dir = tempDir("findings");
  const good = writeDockerConfig(join(dir, "good"), {
    [services.htpasswd.host]: { username: "alice", password: services.htpasswd.users.alice ?? "" },
  });
  const helpers = join(dir, "helpers.json");
  writeFileSync(
    helpers,
    JSON.stringify({ credHelpers: { "127.0.0.1:7": "cipt-missing", "127.0.0.1:8": "ciptsleep", "127.0.0.1:9": "cipt" } }),
  );
  writeFileSync(join(dir, "store.json"), JSON.stringify({ servers: { "127.0.0.1:9": { garbage: "Segmentation fault" } } }));
  const truncated = join(dir, "truncated.json");
  writeFileSync(truncated, '{"auths": {"127.0.0.1:6": {"auth": "YWxp');
  const port = await freePort();
  const file = join(dir, "ci-prober.yml");
  writeFileSync(
    file,
    [
      "interval: 1s",
      "timeout: 2s",
      // Longer than the interval: a re-plan is almost always waiting on the hanging helper.
      "helper_timeout: 1500ms",
      `listen_address: 127.0.0.1:${port}`,
      "runners:",
      `  - {name: good, docker_config: ${good}}`,
      `  - {name: helpers, docker_config: ${helpers}}`,
      `  - {name: truncated, docker_config: ${truncated}}`,
      "",
    ].join("\n"),
  );
  const daemon = await startDaemonProc(file, port, { PATH: `${HELPERS}:${process.env.PATH ?? ""}`, CIPT_STORE: join(dir, "store.json") });
  try {
    await waitFor("ready", 20_000, async () => ((await daemon.get("/-/ready")).status === 200 ? true : undefined));
    // A few re-plans, each one re-reading the same broken sources.
    await new Promise((r) => setTimeout(r, 3500));
  } finally {
    expect(await daemon.stop()).toBe(0);
  }
  const all = lines(daemon.log());
  const src = (host: string) => `${helpers}#credHelpers["${host}"]`;
  expect(
    all
      .filter((l) => l.msg === "runner source unusable")
      .map((l) => [l.level, l.error])
      .sort(),
  ).toEqual([
    ["warn", `${src("127.0.0.1:7")}: docker-credential-cipt-missing is not installed (not found on PATH)`],
    ["warn", `${src("127.0.0.1:8")}: docker-credential-ciptsleep get gave no answer within 1500ms`],
    ["warn", `${src("127.0.0.1:9")}: docker-credential-cipt get printed no credential-helper JSON`],
    ["warn", `${truncated}: invalid JSON at line 1 column 41: Unterminated string`],
  ]);
  expect(all.filter((l) => l.level === "error" || l.level === "fatal")).toEqual([]);
  expect(all.some((l) => l.msg === "re-plan failed")).toBe(false);
  expect(all.at(-1)?.msg).toBe("stopped");
}, 60_000);
