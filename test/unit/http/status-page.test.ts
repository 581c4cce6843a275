import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { REASONS } from "../../../src/reasons.js";
import { REASON_WORDS, RUNBOOK_ANCHORS, RUNBOOK_BASE } from "../../../src/http/runbooks.js";
import { duration, time } from "../../../src/http/status-page.js";
import { StatusStore } from "../../../src/http/status.js";
import { KeySet, taskKey } from "../../../src/task-key.js";
import type { ProbeResult } from "../../../src/types.js";
import { ROOT, RUNBOOKS_FILE } from "../../helpers/alerts/files.js";

const LOGIN = taskKey("login", "r1", "registry.example.jp");
const PULL = taskKey("pull", "r1", "img");

function result(success: boolean, startedAt: number): ProbeResult {
  return {
    probe: "login",
    runner: "r1",
    target: "registry.example.jp",
    success,
    ...(success ? {} : { reason: "unauthorized" as const }),
    durationSeconds: 0.1,
    startedAt,
    log: [],
  };
}

interface Probe {
  failing_since: string | null;
  last_success: string | null;
  history: unknown[];
}

describe("/status knows since when a probe fails, beyond its ten-result history", () => {
  test("failing_since is the first failure of the current run, last_success the latest success; a success clears failing_since", () => {
    const store = new StatusStore();
    const probe = () => (store.toJSON() as { probes: Probe[] }).probes[0];
    store.record(LOGIN, result(true, Date.UTC(2026, 11, 1, 2, 0, 0)));
    expect(probe()).toMatchObject({ failing_since: null, last_success: "2026-12-01T02:00:00.000Z" });
    for (let i = 1; i <= 15; i++) store.record(LOGIN, result(false, Date.UTC(2026, 11, 1, 2, i, 0)));
    expect(probe()).toMatchObject({ failing_since: "2026-12-01T02:01:00.000Z", last_success: "2026-12-01T02:00:00.000Z" });
    expect(probe()?.history.length).toBe(10);
    store.record(LOGIN, result(true, Date.UTC(2026, 11, 1, 2, 20, 0)));
    expect(probe()).toMatchObject({ failing_since: null, last_success: "2026-12-01T02:20:00.000Z" });
  });

  test("a probe that never succeeded has last_success null; a task that vanished is forgotten", () => {
    const store = new StatusStore();
    store.record(PULL, result(true, Date.UTC(2026, 11, 1, 2, 55, 0)));
    store.record(PULL, result(false, Date.UTC(2026, 11, 1, 3, 0, 0)));
    store.retain(new KeySet());
    expect((store.toJSON() as { probes: Probe[] }).probes).toEqual([]);
    store.record(PULL, result(false, Date.UTC(2026, 11, 1, 3, 5, 0)));
    expect((store.toJSON() as { probes: Probe[] }).probes[0]).toMatchObject({
      failing_since: "2026-12-01T03:05:00.000Z",
      last_success: null,
    });
  });
});

describe("the page's words and links", () => {
  test("every runbook anchor the page links is a section of docs/runbooks.md, under the base alerts.yml uses", () => {
    const anchors = [...readFileSync(RUNBOOKS_FILE, "utf8").matchAll(/^## (\S+)$/gm)].map((m) => (m[1] ?? "").toLowerCase());
    expect(Object.values(RUNBOOK_ANCHORS).filter((a) => !anchors.includes(a))).toEqual([]);
    expect(readFileSync(`${ROOT}/prometheus/alerts.yml`, "utf8")).toContain(`runbook_url: ${RUNBOOK_BASE}#`);
  });

  test("every failure reason has its sentence", () => {
    expect(Object.keys(REASON_WORDS).sort()).toEqual([...REASONS].sort());
  });

  test("times are UTC to the second and durations read as an engineer says them", () => {
    expect(time("2026-12-01T02:14:07.123Z")).toBe("2026-12-01 02:14:07 UTC");
    expect([duration(45_000), duration(252_000), duration(3 * 3600_000 + 5 * 60_000), duration(2 * 86_400_000 + 4 * 3600_000)]).toEqual([
      "45s",
      "4m 12s",
      "3h 5m",
      "2d 4h",
    ]);
  });
});
