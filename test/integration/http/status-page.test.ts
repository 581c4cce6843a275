import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, expect, inject, test } from "vitest";
import { time } from "../../../src/http/status-page.js";
import { RUNBOOK_BASE } from "../../../src/http/runbooks.js";
import { ROOT } from "../../helpers/alerts/files.js";
import { startDaemonProc, waitFor, type DaemonProc } from "../../helpers/daemon.js";
import { createApiToken, createGitlabUser, setGitlabUserState, tempDir, writeDockerConfig } from "../../helpers/fixtures.js";
import { value } from "../../helpers/metrics.js";
import { freePort } from "../../services/procs.js";

// The status page of a daemon in the incident scenario (test/integration/daemon/incident.test.ts), as
// Debian's chromium renders it with JavaScript off: the facts must be those of /status, and a
// screenshot lands in .tmp/screenshots/ for a person to look at.

const services = inject("services");
const registry = services.token.host;
const image = services.token.image;
const SCREENSHOT = join(ROOT, ".tmp/screenshots/status.png");

let daemon: DaemonProc;
let browser: Browser;
let page: Page;
let yamada: { username: string; password: string };
let baseConfig = "";

interface Probe {
  key: string;
  failing_since: string | null;
  last_success: string | null;
  last: { success: boolean; reason: string | null } | null;
  history: { success: boolean; reason: string | null }[];
}

beforeAll(async () => {
  const dir = tempDir("status-page");
  yamada = await createGitlabUser(services.gitlab.url, { username: `t.yamada-${Date.now()}` });
  const deploy = await createGitlabUser(services.gitlab.url, { username: `gitlab+deploy-token-${Date.now() % 100000}`, deployToken: true });
  baseConfig = writeDockerConfig(join(dir, "base-runner", ".docker"), { [registry]: yamada });
  const ciConfig = writeDockerConfig(join(dir, "docker-ci", ".docker"), { [registry]: deploy });
  const port = await freePort();
  const tokenFile = join(dir, "gitlab-token");
  writeFileSync(tokenFile, `${await createApiToken(services.gitlab.url, "root")}\n`);
  const configFile = join(dir, "ci-prober.yml");
  writeFileSync(
    configFile,
    [
      "interval: 1s",
      "timeout: 5s",
      `listen_address: 127.0.0.1:${port}`,
      `images: ["${image}"]`,
      `gitlab: {url: "${services.gitlab.url}", token_file: ${tokenFile}, interval: 1s}`,
      "runners:",
      `  - {name: base-runner, docker_config: ${baseConfig}, mode: direct}`,
      `  - {name: docker-ci, docker_config: ${ciConfig}, mode: direct}`,
      "",
    ].join("\n"),
  );
  daemon = await startDaemonProc(configFile, port);
  await waitFor("ready", 15_000, async () => ((await daemon.get("/-/ready")).status === 200 ? true : undefined));
  // A few good rounds first, so the strip shows green before the red.
  await new Promise((r) => setTimeout(r, 2500));
  await setGitlabUserState(services.gitlab.url, yamada.username, "blocked");
  await waitFor("base-runner failing and its owner blocked", 15_000, async () => {
    const m = await daemon.metrics();
    const status = JSON.parse((await daemon.get("/status")).body) as { credential_checks: { runner: string; state: string }[] };
    return value(m, "ci_prober_login_success", { runner: "base-runner", registry }) === 0 &&
      value(m, "ci_prober_pull_success", { runner: "base-runner", image }) === 0 &&
      status.credential_checks.some((c) => c.runner === "base-runner" && c.state === "blocked")
      ? true
      : undefined;
  });
  await new Promise((r) => setTimeout(r, 1500));
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu"] });
  const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await daemon?.stop();
});

test("chromium without JavaScript shows the failing probes first, with /status's failing_since and last_success, the reason in words, the runbook and the file", async () => {
  const requests: string[] = [];
  page.on("request", (r) => requests.push(r.url()));
  // The facts of the moment the page was served: /status before and after it, equal, so no probe ran in between.
  // A credential check that times out on a loaded machine reports the owner's state as unknown for a round: wait for one that knows.
  const status = await waitFor("a page load between two rounds, the owner known to be blocked", 30_000, async () => {
    const before = (await daemon.get("/status")).body;
    requests.length = 0;
    await page.goto(`${daemon.url}/`);
    const after = (await daemon.get("/status")).body;
    const doc = JSON.parse(after) as { probes: Probe[]; credential_checks: { runner: string; state: string }[] };
    return before === after && doc.credential_checks.some((c) => c.runner === "base-runner" && c.state === "blocked") ? doc : undefined;
  });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });

  expect(requests).toEqual([`${daemon.url}/`]);
  expect(await page.locator("script").count()).toBe(0);
  expect(await page.locator('meta[http-equiv="refresh"]').getAttribute("content")).toBe("30");
  const total = status.probes.filter((p) => p.last !== null).length;
  expect(await page.locator("header .headline").innerText()).toBe(`2 of ${total} probes failing`);
  expect(await page.title()).toBe("✗ 2 failing · ci-prober");

  const cards = page.locator("#failing article.card");
  expect(await cards.count()).toBe(2);
  const heads = await cards.locator(".card-head").allInnerTexts();
  expect(heads.sort()).toEqual([`UNAUTHORIZED login base-runner → ${registry}`, `UNAUTHORIZED pull base-runner → ${image}`]);
  for (const [probe, target] of [
    ["login", registry],
    ["pull", image],
  ] as const) {
    const facts = status.probes.find((p) => p.key.startsWith(`${probe}|base-runner|`));
    expect(facts?.failing_since).not.toBeNull();
    expect(facts?.last_success).not.toBeNull();
    const card = cards.filter({ hasText: `${probe} base-runner → ${target}` });
    const since = await card.locator(".since").innerText();
    expect(since).toMatch(
      new RegExp(
        `^failing since ${reEscape(time(facts?.failing_since ?? ""))} \\((\\d+)s\\), last success ${reEscape(time(facts?.last_success ?? ""))}$`,
      ),
    );
    expect(await card.locator(".words").innerText()).toBe(
      "The registry refused the credential (401): the password or token is wrong, revoked or expired, or its owner is blocked. runbook ↗".replace(
        " ↗",
        "",
      ),
    );
    expect(await card.locator("a.runbook").getAttribute("href")).toBe(
      `${RUNBOOK_BASE}#${probe === "login" ? "ciregistryloginfailing" : "ciimagepullfailing"}`,
    );
    expect(await card.locator(".cred").innerText()).toBe(
      `credential ${yamada.username} (personal, password) from ${baseConfig}#auths["${registry}"] · in use`,
    );
    const cells = await card.locator(".strip .cell").evaluateAll((els) => els.map((e) => e.className));
    expect(cells).toEqual(
      [...(facts?.history ?? [])].reverse().map((h) => (h.success ? "cell ok" : h.reason === "timeout" ? "cell timeout" : "cell fail")),
    );
    expect(cells.at(-1)).toBe("cell fail");
    expect(cells.length).toBe(facts?.history.length);
  }

  const risks = await page.locator("#risks li").allInnerTexts();
  expect(risks).toEqual([
    `base-runner → ${registry}: the owner of ${yamada.username}'s credential is blocked. runbook`,
    `base-runner → ${registry}: ${yamada.username} is a personal credential (${baseConfig}#auths["${registry}"]): when that person leaves or is locked out, these jobs fail. runbook`,
  ]);
  const groups = await page.locator("#runners details.group > summary").allInnerTexts();
  expect(groups.map((g) => g.split(" · ")[0])).toEqual(["2 FAILING base-runner", "OK docker-ci"]);
  expect(await page.locator("#runners details.group").first().getAttribute("open")).toBe("");
  expect(await page.locator("#runners details.group").nth(1).getAttribute("open")).toBeNull();
  const body = await page.content();
  for (const secret of [yamada.password, Buffer.from(`${yamada.username}:${yamada.password}`).toString("base64")])
    expect(body).not.toContain(secret);
});

function reEscape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

mkdirSync(join(ROOT, ".tmp/screenshots"), { recursive: true });
