import { describe, expect, test } from "vitest";
import { StatusStore } from "../../../src/http/status.js";
import { parseStatusQuery, statusPage } from "../../../src/http/status-query.js";
import { taskKey } from "../../../src/task-key.js";
import type { Runner } from "../../../src/types.js";

/** A store of `n` runners, each with a login and a pull result; every third login failed. */
function store(n: number): StatusStore {
  const s = new StatusStore();
  const runners: Runner[] = Array.from({ length: n }, (_, i) => ({
    name: `r${i}`,
    mode: "direct",
    source: `config.toml#runners[${i}]`,
    dockerHost: "unix:///x.sock",
    images: [],
  }));
  s.setRunners(runners, new Map());
  for (let i = 0; i < n; i++) {
    for (const probe of ["login", "pull"] as const) {
      const failed = probe === "login" && i % 3 === 0;
      s.record(taskKey(probe, `r${i}`, "reg"), {
        probe,
        runner: `r${i}`,
        target: "reg",
        success: !failed,
        ...(failed ? { reason: "unauthorized" as const } : {}),
        durationSeconds: 0.1,
        startedAt: 0,
        log: [],
      });
    }
  }
  s.record(taskKey("gitlab_canary", "gitlab", "ci/canary"), {
    probe: "canary",
    runner: "gitlab",
    target: "ci/canary",
    success: true,
    durationSeconds: 1,
    startedAt: 0,
    log: [],
  });
  return s;
}

type Page = {
  summary: { runners: number; probes: number; failing: number };
  page: { offset: number; limit: number; runners: number; next: string | null };
  runners: { name: string }[];
  probes: { key: string }[];
};

function page(s: StatusStore, search: string): Page {
  const q = parseStatusQuery(new URLSearchParams(search));
  if ("error" in q) throw new Error(q.error);
  return statusPage(s.toJSON(), q) as Page;
}

describe("/status for many runners", () => {
  test("gives 100 runners a page with only their probes, a summary of all, and the path of the next page", () => {
    const p = page(store(1000), "");
    expect(p.summary).toEqual({ runners: 1000, probes: 2001, failing: 334 });
    expect(p.page).toEqual({ offset: 0, limit: 100, runners: 1000, next: "/status?limit=100&offset=100" });
    expect(p.runners.map((r) => r.name)).toEqual(Array.from({ length: 100 }, (_, i) => `r${i}`));
    // Two probes per runner of the page, and the GitLab canary (no runner of the config) on the first page.
    expect(p.probes).toHaveLength(201);
    expect(p.probes.at(-1)?.key).toBe("canary|gitlab|ci/canary");
  });

  test("the last page has no next and no runner-less probes", () => {
    const p = page(store(1000), "limit=300&offset=900");
    expect(p.page).toEqual({ offset: 900, limit: 300, runners: 1000, next: null });
    expect(p.runners).toHaveLength(100);
    expect(p.probes.map((x) => x.key).slice(0, 2)).toEqual(["login|r900|reg", "pull|r900|reg"]);
    expect(p.probes).toHaveLength(200);
  });

  test("?runner= picks runners by name, repeated for several", () => {
    const p = page(store(1000), "runner=r7&runner=r512&runner=nobody");
    expect(p.runners.map((r) => r.name)).toEqual(["r7", "r512"]);
    expect(p.probes.map((x) => x.key)).toEqual(["login|r7|reg", "pull|r7|reg", "login|r512|reg", "pull|r512|reg"]);
    expect(p.page).toEqual({ offset: 0, limit: 100, runners: 2, next: null });
  });

  test("a limit or offset that is not a whole number in range is a one-line error naming /status and the parameter", () => {
    expect(parseStatusQuery(new URLSearchParams("limit=0"))).toEqual({
      error: '/status: limit: expected an integer from 1 to 1000, got "0"',
    });
    expect(parseStatusQuery(new URLSearchParams("limit=5000"))).toEqual({
      error: '/status: limit: expected an integer from 1 to 1000, got "5000"',
    });
    expect(parseStatusQuery(new URLSearchParams("offset=-1"))).toEqual({ error: '/status: offset: expected an integer from 0, got "-1"' });
  });
});
