import { describe, expect, test } from "vitest";
import { heldFromCrawl } from "../../../src/gitlab/held.js";
import type { Crawl, HeldVariable, HolderKind } from "../../../src/gitlab/variables.js";

// The effective DOCKER_AUTH_CONFIG per project, as GitLab sends it to a job (SPEC.md, 1a): the project's own, else the nearest
// group's up the chain, else the instance's — one value, never merged. No service: crawls written out by hand.

const groups = [
  { id: 1, fullPath: "acme", parentId: null },
  { id: 2, fullPath: "acme/platform", parentId: 1 },
  { id: 3, fullPath: "acme/platform/build", parentId: 2 },
];
const projects = [
  { id: 10, path: "acme/platform/build/api", groupId: 3 },
  { id: 11, path: "acme/platform/build/web", groupId: 3 },
  { id: 12, path: "acme/site", groupId: 1 },
];

function v(kind: HolderKind, path: string, extra: Partial<HeldVariable> = {}): HeldVariable {
  return {
    holder: { kind, path },
    value: "{}",
    variableType: "env_var",
    protected: false,
    masked: false,
    hidden: false,
    raw: false,
    environmentScope: "*",
    ...extra,
  };
}

interface Case {
  name: string;
  variables: HeldVariable[];
  /** Per variable (by its runner name): [projects whose jobs get it, the variable that hides it everywhere below]. */
  want: Record<string, [number, string | null]>;
}

const cases: Case[] = [
  {
    name: "the instance's value reaches every project when nothing nearer holds one",
    variables: [v("instance", "")],
    want: { "gitlab:instance": [3, null] },
  },
  {
    name: "a group's value beats the instance's for the projects below it",
    variables: [v("instance", ""), v("group", "acme/platform")],
    want: { "gitlab:instance": [1, null], "gitlab:group/acme/platform": [2, null] },
  },
  {
    name: "the nearest group up the chain wins over its parents",
    variables: [v("group", "acme"), v("group", "acme/platform"), v("group", "acme/platform/build")],
    want: {
      "gitlab:group/acme": [1, null],
      "gitlab:group/acme/platform": [0, "gitlab:group/acme/platform/build#DOCKER_AUTH_CONFIG"],
      "gitlab:group/acme/platform/build": [2, null],
    },
  },
  {
    name: "a project's own value beats every group's and the instance's",
    variables: [
      v("instance", ""),
      v("group", "acme/platform/build"),
      v("project", "acme/platform/build/api"),
      v("project", "acme/platform/build/web"),
    ],
    want: {
      "gitlab:instance": [1, null],
      "gitlab:group/acme/platform/build": [0, "gitlab:project/acme/platform/build/api#DOCKER_AUTH_CONFIG"],
      "gitlab:project/acme/platform/build/api": [1, null],
      "gitlab:project/acme/platform/build/web": [1, null],
    },
  },
  {
    name: "a value scoped to an environment serves only that environment's jobs: it hides nothing for the others",
    variables: [v("group", "acme"), v("project", "acme/site", { environmentScope: "production" })],
    want: { "gitlab:group/acme": [3, null], "gitlab:project/acme/site@production": [0, null] },
  },
  {
    name: "a masked and hidden value still wins (GitLab sends it to the job); ci-prober only cannot read it",
    variables: [v("group", "acme"), v("group", "acme/platform", { value: null, masked: true, hidden: true })],
    want: { "gitlab:group/acme": [1, null], "gitlab:group/acme/platform": [2, null] },
  },
];

describe("heldFromCrawl: the effective DOCKER_AUTH_CONFIG per project", () => {
  test.each(cases)("$name", ({ variables, want }) => {
    const crawl: Crawl = { groups, projects, variables, errors: [], requests: 0 };
    const held = heldFromCrawl(crawl);
    expect(Object.fromEntries(held.views.map((view) => [view.runner, [view.effective_projects, view.hidden_by]]))).toEqual(want);
    expect(held.views.filter((view) => view.unreadable !== null).map((view) => view.runner)).toEqual(
      variables.filter((x) => x.value === null).map((x) => `gitlab:${x.holder.kind}/${x.holder.path}`),
    );
  });
});
