import { GitlabBudget } from "../src/gitlab/budget.js";
import { GitlabClient } from "../src/gitlab/client.js";
import { heldFromCrawl } from "../src/gitlab/held.js";
import { crawlVariables } from "../src/gitlab/variables.js";
import { Secret } from "../src/secret.js";
import { ciState } from "../test/fake-gitlab/pipelines.js";
import { startFakeGitlab } from "../test/fake-gitlab/server.js";
import { variablesState } from "../test/fake-gitlab/variables.js";
import { testSigningKey } from "../test/helpers/gitlab.js";
import type { BenchReport } from "./lib.js";

/**
 * The crawl of DOCKER_AUTH_CONFIG held in GitLab (`gitlab: {variables: true}`)
 * on a fake instance of 500 groups (100 top-level, 4 subgroups each) and 10,000
 * projects: requests made against the fewest the API allows (one per list page
 * and per holder), wall time with no budget, and with a budget below the
 * crawl's size, where the request rate in every 60-second window must stay
 * within it. CRAWL_RPM sets the budget (default 6,000 a minute).
 */

const TOP = 100;
const SUB = 4;
const PROJECTS = 10_000;
const PER_PAGE = 100;

export async function benchCrawl(): Promise<BenchReport> {
  const rpm = Number(process.env.CRAWL_RPM ?? 6000);
  const fake = await startFakeGitlab(testSigningKey());
  try {
    const groups = seed(fake.state);
    const token = new Secret(fake.state.issueApiToken("root"));
    const ci = ciState(fake.state);
    // The fake's own throttle (2000 a minute, like GitLab.com) would pace the crawl before ci-prober's budget does.
    ci.limitPerMinute = 1_000_000;
    const requests = ci.requests;

    const t0 = performance.now();
    const free = await crawlVariables(new GitlabClient({ url: fake.url, token }), true, AbortSignal.timeout(600_000));
    const freeSeconds = (performance.now() - t0) / 1000;

    requests.length = 0;
    const budget = new SlotClock({ requestsPerMinute: rpm, cacheTtlMs: 60_000 });
    const t1 = performance.now();
    const paced = await crawlVariables(new GitlabClient({ url: fake.url, token, budget }), true, AbortSignal.timeout(900_000));
    const pacedSeconds = (performance.now() - t1) / 1000;
    const window = busiestMinute(requests.map((r) => r.at));
    const slots = busiestMinute(budget.slots);
    const held = heldFromCrawl(paced);

    const fewest = 1 + Math.ceil(groups / PER_PAGE) + Math.ceil(PROJECTS / PER_PAGE) + groups + PROJECTS;
    // A sliding one-minute budget lets its first `rpm` requests go at once; each further `rpm` waits a minute.
    const floorSeconds = Math.floor((paced.requests - 1) / rpm) * 60;
    return {
      name: `crawl: ${groups} groups, ${PROJECTS} projects, DOCKER_AUTH_CONFIG variables (budget ${rpm}/min)`,
      rows: [
        { tool: "crawl, no budget", medianSeconds: freeSeconds },
        {
          tool: `crawl, budget ${rpm}/min (ratio: to the minute the budget itself forces)`,
          medianSeconds: pacedSeconds,
          ...(floorSeconds > 0 ? { ratio: pacedSeconds / floorSeconds } : {}),
        },
      ],
      notes: [
        `requests: ${paced.requests} (${(paced.requests / fewest).toFixed(3)}x the fewest the API allows, ${fewest}); ` +
          `the unbudgeted crawl sent ${free.requests}`,
        `busiest 60 s window of slots taken: ${slots} (budget ${rpm}: ${slots <= rpm ? "within" : "OVER"}); ` +
          `of arrivals at GitLab: ${window} ` +
          `(${window <= rpm ? "within" : `${window - rpm} over: requests in flight when the window turned arrive after their slot`})`,
        `held: ${held.views.length} variables, ${held.views.filter((v) => v.effective_projects > 0).length} effective for some project; ` +
          `crawl errors: ${paced.errors.length}`,
      ],
    };
  } finally {
    await fake.close();
  }
}

/** 500 groups, 10,000 projects spread over them, a DOCKER_AUTH_CONFIG at the instance, 50 groups and 100 projects. */
function seed(state: Parameters<typeof variablesState>[0]): number {
  const v = variablesState(state);
  const paths: string[] = [];
  for (let t = 0; t < TOP; t++) {
    paths.push(`org-${t}`);
    for (let s = 0; s < SUB - 1; s++) paths.push(`org-${t}/team-${s}`);
  }
  // 100 top groups with 3 subgroups each and one of them nested once more: 500 groups.
  for (let t = 0; t < TOP; t++) paths.push(`org-${t}/team-0/squad`);
  for (const p of paths) v.addGroup(p);
  for (let i = 0; i < PROJECTS; i++) v.addProject(`${paths[i % paths.length]}/app-${i}`);
  const value = (user: string) =>
    JSON.stringify({ auths: { "registry.example.jp": { auth: Buffer.from(`${user}:pw-${user}`).toString("base64") } } });
  v.addVariable({ holder: "instance", key: "DOCKER_AUTH_CONFIG", value: value("instance-bot") });
  for (let t = 0; t < 50; t++) v.addVariable({ holder: "group", path: `org-${t}`, key: "DOCKER_AUTH_CONFIG", value: value(`group-${t}`) });
  for (let i = 0; i < 100; i++)
    v.addVariable({
      holder: "project",
      path: `${paths[i % paths.length]}/app-${i}`,
      key: "DOCKER_AUTH_CONFIG",
      value: value(`project-${i}`),
    });
  return paths.length;
}

/** The budget, with the time each slot was given (what it promises to keep within requestsPerMinute). */
class SlotClock extends GitlabBudget {
  readonly slots: number[] = [];

  override async take(endpoint: string, signal: AbortSignal): Promise<void> {
    await super.take(endpoint, signal);
    this.slots.push(Date.now());
  }
}

/** The most requests that fell into any 60-second window. */
function busiestMinute(at: number[]): number {
  const sorted = [...at].sort((a, b) => a - b);
  let best = 0;
  let start = 0;
  for (let end = 0; end < sorted.length; end++) {
    while ((sorted[end] ?? 0) - (sorted[start] ?? 0) >= 60_000) start++;
    best = Math.max(best, end - start + 1);
  }
  return best;
}
