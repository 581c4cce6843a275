import type { IncomingMessage, ServerResponse } from "node:http";
import { ciState, type FakeProject } from "./pipelines.js";
import type { FakeUser, GitlabState } from "./state.js";

/**
 * Groups, projects and CI/CD variables of the fake GitLab, field for field as
 * doc/api/groups.md, projects.md, group_level_variables.md,
 * project_level_variables.md and instance_level_ci_variables.md give them, with
 * GitLab's pagination (doc/api/rest/index.md#pagination): offset pages with
 * x-page, x-per-page, x-next-page, x-prev-page, x-total, x-total-pages (the
 * totals left out above 10,000 rows, as GitLab does) and a Link header; keyset
 * pages (`pagination=keyset`) on /projects ordered by id, with only a Link
 * rel="next". Variables are an administrator's to read here (GitLab: group or
 * project owners/maintainers, instance variables administrators only).
 */

export interface FakeGroup {
  id: number;
  name: string;
  path: string;
  fullPath: string;
  parentId: number | null;
  createdAt: string;
}

export interface FakeVariable {
  key: string;
  value: string;
  variable_type: "env_var" | "file";
  protected: boolean;
  masked: boolean;
  hidden: boolean;
  raw: boolean;
  environment_scope: string;
  description: string | null;
}

export interface NewVariable {
  holder: "instance" | "group" | "project";
  /** Full path of the group or project; absent for the instance. */
  path?: string;
  key: string;
  value: string;
  variable_type?: "env_var" | "file";
  protected?: boolean;
  masked?: boolean;
  /** Masked and hidden (GitLab 17.4+): the API never returns the value again. */
  hidden?: boolean;
  raw?: boolean;
  environment_scope?: string;
  description?: string | null;
}

const MAX_COUNTED = 10_000;

export class VariablesState {
  readonly groups = new Map<number, FakeGroup>();
  readonly groupsByPath = new Map<string, FakeGroup>();
  readonly projectsByPath = new Map<string, FakeProject>();
  /** Project id → the group it sits in. */
  readonly namespaceOf = new Map<number, number>();
  readonly instanceVariables: FakeVariable[] = [];
  readonly groupVariables = new Map<number, FakeVariable[]>();
  readonly projectVariables = new Map<number, FakeVariable[]>();
  /** The container registry host[:port]; null when the instance has none. */
  registryHost: string | null = null;
  #nextGroup = 100_000;

  constructor(readonly state: GitlabState) {}

  /** A group and every group above it that does not exist yet. */
  addGroup(fullPath: string): FakeGroup {
    const existing = this.groupsByPath.get(fullPath);
    if (existing) return existing;
    const slash = fullPath.lastIndexOf("/");
    const parent = slash === -1 ? null : this.addGroup(fullPath.slice(0, slash));
    const path = fullPath.slice(slash + 1);
    const group: FakeGroup = {
      id: this.#nextGroup++,
      name: path,
      path,
      fullPath,
      parentId: parent?.id ?? null,
      createdAt: new Date().toISOString(),
    };
    this.groups.set(group.id, group);
    this.groupsByPath.set(fullPath, group);
    return group;
  }

  /** A project at path_with_namespace, its groups created as needed. */
  addProject(pathWithNamespace: string): FakeProject {
    const existing = this.projectsByPath.get(pathWithNamespace);
    if (existing) return existing;
    const slash = pathWithNamespace.lastIndexOf("/");
    const group = slash === -1 ? undefined : this.addGroup(pathWithNamespace.slice(0, slash));
    const project = ciState(this.state).addProject({ path: pathWithNamespace, jobs: [] });
    this.projectsByPath.set(pathWithNamespace, project);
    if (group) this.namespaceOf.set(project.id, group.id);
    return project;
  }

  addVariable(spec: NewVariable): FakeVariable {
    const variable: FakeVariable = {
      key: spec.key,
      value: spec.value,
      variable_type: spec.variable_type ?? "env_var",
      protected: spec.protected ?? false,
      masked: spec.masked ?? spec.hidden ?? false,
      hidden: spec.hidden ?? false,
      raw: spec.raw ?? false,
      environment_scope: spec.environment_scope ?? "*",
      description: spec.description ?? null,
    };
    if (spec.holder === "instance") this.instanceVariables.push(variable);
    else if (spec.holder === "group") push(this.groupVariables, this.addGroup(spec.path ?? "").id, variable);
    else push(this.projectVariables, this.addProject(spec.path ?? "").id, variable);
    return variable;
  }

  findGroup(idOrPath: string): FakeGroup | undefined {
    return /^\d+$/.test(idOrPath) ? this.groups.get(Number(idOrPath)) : this.groupsByPath.get(idOrPath);
  }

  findProject(idOrPath: string): FakeProject | undefined {
    return /^\d+$/.test(idOrPath) ? ciState(this.state).projects.get(Number(idOrPath)) : this.projectsByPath.get(idOrPath);
  }
}

const states = new WeakMap<GitlabState, VariablesState>();

export function variablesState(state: GitlabState): VariablesState {
  let v = states.get(state);
  if (!v) {
    v = new VariablesState(state);
    states.set(state, v);
  }
  return v;
}

/** The routes of this file; false for any other path. Called after the rate-limit plan has had its say. */
export function handleVariablesApi(state: GitlabState, req: IncomingMessage, res: ServerResponse, url: URL): boolean {
  if ((req.method ?? "GET") !== "GET") return false;
  const segments = url.pathname
    .slice("/api/v4".length)
    .split("/")
    .slice(1)
    .map((s) => decodeURIComponent(s));
  const route = routeOf(segments);
  if (route === undefined) return false;
  const user = authenticate(state, req);
  if (!user) return send(res, 401, { message: "401 Unauthorized" });
  const v = variablesState(state);
  const origin = `http://${req.headers.host ?? "127.0.0.1"}`;
  const page = (items: unknown[]) => paginate(req, res, url, origin, items);
  const [, id] = segments;
  switch (route) {
    case "groups":
      return page([...v.groups.values()].sort(byName).map((g) => groupEntity(g, origin)));
    case "admin/ci/variables":
      return user.isAdmin ? page(v.instanceVariables.map(instanceVariableEntity)) : send(res, 403, { message: "403 Forbidden" });
    case "projects":
      return page(projectsOf(v, [...ciState(state).projects.values()], origin, url.searchParams.get("simple") === "true"));
  }
  if (route.startsWith("groups/")) {
    const group = id === undefined ? undefined : v.findGroup(id);
    if (!group) return send(res, 404, { message: "404 Group Not Found" });
    if (route === "groups/:id") return send(res, 200, groupEntity(group, origin));
    if (route === "groups/:id/descendant_groups")
      return page(
        descendants(v, group)
          .sort(byName)
          .map((g) => groupEntity(g, origin)),
      );
    if (route === "groups/:id/projects")
      return page(projectsOf(v, projectsUnder(v, group, url.searchParams.get("include_subgroups") === "true"), origin, true));
    if (!user.isAdmin) return send(res, 403, { message: "403 Forbidden" });
    return page((v.groupVariables.get(group.id) ?? []).map(variableEntity));
  }
  const project = id === undefined ? undefined : v.findProject(id);
  if (!project) return send(res, 404, { message: "404 Project Not Found" });
  if (route === "projects/:id") return send(res, 200, projectEntity(v, project, origin, false));
  if (!user.isAdmin) return send(res, 403, { message: "403 Forbidden" });
  return page((v.projectVariables.get(project.id) ?? []).map(variableEntity));
}

function routeOf(s: string[]): string | undefined {
  const joined = s.join("/");
  if (joined === "groups" || joined === "projects" || joined === "admin/ci/variables") return joined;
  if (s[0] === "groups" && s.length === 2) return "groups/:id";
  if (s[0] === "groups" && s.length === 3 && ["descendant_groups", "projects", "variables"].includes(s[2] ?? ""))
    return `groups/:id/${s[2]}`;
  if (s[0] === "projects" && s.length === 2) return "projects/:id";
  if (s[0] === "projects" && s.length === 3 && s[2] === "variables") return "projects/:id/variables";
  return undefined;
}

function descendants(v: VariablesState, group: FakeGroup): FakeGroup[] {
  const prefix = `${group.fullPath}/`;
  return [...v.groups.values()].filter((g) => g.fullPath.startsWith(prefix));
}

function projectsUnder(v: VariablesState, group: FakeGroup, subgroups: boolean): FakeProject[] {
  const ids = new Set([group.id, ...(subgroups ? descendants(v, group).map((g) => g.id) : [])]);
  return [...ciState(v.state).projects.values()].filter((p) => ids.has(v.namespaceOf.get(p.id) ?? -1));
}

function projectsOf(v: VariablesState, projects: FakeProject[], origin: string, simple: boolean): { id: number }[] {
  return projects.sort((a, b) => a.id - b.id).map((p) => projectEntity(v, p, origin, simple));
}

function byName(a: FakeGroup, b: FakeGroup): number {
  return a.name.localeCompare(b.name) || a.id - b.id;
}

// ---- entities -------------------------------------------------------------

function groupEntity(g: FakeGroup, origin: string) {
  return {
    id: g.id,
    web_url: `${origin}/groups/${g.fullPath}`,
    name: g.name,
    path: g.path,
    description: "",
    visibility: "private",
    full_name: g.fullPath.split("/").join(" / "),
    full_path: g.fullPath,
    created_at: g.createdAt,
    parent_id: g.parentId,
  };
}

/** The Basic entity for `simple=true`, else a few more fields (the registry prefix among them). */
function projectEntity(v: VariablesState, p: FakeProject, origin: string, simple: boolean) {
  const groupId = v.namespaceOf.get(p.id);
  const group = groupId === undefined ? undefined : v.groups.get(groupId);
  const name = p.path.slice(p.path.lastIndexOf("/") + 1);
  const basic = {
    id: p.id,
    name,
    path: name,
    path_with_namespace: p.path,
    name_with_namespace: p.path.split("/").join(" / "),
    created_at: new Date(0).toISOString(),
    default_branch: "main",
    web_url: `${origin}/${p.path}`,
    namespace: group
      ? {
          id: group.id,
          name: group.name,
          path: group.path,
          kind: "group",
          full_path: group.fullPath,
          parent_id: group.parentId,
          web_url: `${origin}/groups/${group.fullPath}`,
        }
      : { id: 1, name: "root", path: "root", kind: "user", full_path: "root", parent_id: null, web_url: `${origin}/root` },
  };
  if (simple) return basic;
  return {
    ...basic,
    container_registry_enabled: v.registryHost !== null,
    container_registry_image_prefix: v.registryHost === null ? null : `${v.registryHost}/${p.path}`,
  };
}

/** Group and project variables; a hidden one's value is never returned. */
function variableEntity(x: FakeVariable) {
  return {
    variable_type: x.variable_type,
    key: x.key,
    value: x.hidden ? null : x.value,
    protected: x.protected,
    masked: x.masked,
    hidden: x.hidden,
    raw: x.raw,
    environment_scope: x.environment_scope,
    description: x.description,
  };
}

/** Instance variables have no environment scope and cannot be hidden. */
function instanceVariableEntity(x: FakeVariable) {
  return {
    key: x.key,
    variable_type: x.variable_type,
    value: x.value,
    protected: x.protected,
    masked: x.masked,
    raw: x.raw,
    description: x.description,
  };
}

// ---- plumbing -------------------------------------------------------------

/** GitLab's offset pagination, or keyset pagination on an id-ordered list. */
function paginate(req: IncomingMessage, res: ServerResponse, url: URL, origin: string, items: unknown[]): true {
  const q = url.searchParams;
  const perPage = Math.min(Math.max(Number(q.get("per_page") ?? 20) || 20, 1), 100);
  const link = (params: Record<string, string>) => {
    const u = new URL(`${origin}${url.pathname}`);
    for (const [k, val] of q) u.searchParams.set(k, val);
    for (const [k, val] of Object.entries(params)) u.searchParams.set(k, val);
    return u.href;
  };
  if (q.get("pagination") === "keyset" && q.get("order_by") === "id") {
    const after = Number(q.get("id_after") ?? 0);
    const rows = (items as { id: number }[]).filter((i) => i.id > after);
    const pageRows = rows.slice(0, perPage);
    const last = pageRows.at(-1);
    if (rows.length > perPage && last) res.setHeader("link", `<${link({ id_after: String(last.id) })}>; rel="next"`);
    return send(res, 200, pageRows);
  }
  const pageNo = Math.max(Number(q.get("page") ?? 1) || 1, 1);
  const totalPages = Math.max(Math.ceil(items.length / perPage), 1);
  res.setHeader("x-page", String(pageNo));
  res.setHeader("x-per-page", String(perPage));
  res.setHeader("x-next-page", pageNo < totalPages ? String(pageNo + 1) : "");
  res.setHeader("x-prev-page", pageNo > 1 ? String(pageNo - 1) : "");
  const links = [
    ...(pageNo < totalPages ? [`<${link({ page: String(pageNo + 1) })}>; rel="next"`] : []),
    ...(pageNo > 1 ? [`<${link({ page: String(pageNo - 1) })}>; rel="prev"`] : []),
    `<${link({ page: "1" })}>; rel="first"`,
  ];
  // GitLab stops counting above 10,000 rows: no totals, and no rel="last".
  if (items.length <= MAX_COUNTED) {
    res.setHeader("x-total", String(items.length));
    res.setHeader("x-total-pages", String(totalPages));
    links.push(`<${link({ page: String(totalPages) })}>; rel="last"`);
  }
  res.setHeader("link", links.join(", "));
  void req;
  return send(res, 200, items.slice((pageNo - 1) * perPage, pageNo * perPage));
}

function authenticate(state: GitlabState, req: IncomingMessage): FakeUser | undefined {
  const header = req.headers["private-token"];
  const token = Array.isArray(header) ? header[0] : header;
  const username = token !== undefined ? state.apiTokens.get(token) : undefined;
  const user = username !== undefined ? state.users.get(username) : undefined;
  return user && user.state === "active" ? user : undefined;
}

function send(res: ServerResponse, status: number, value: unknown): true {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(value));
  return true;
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}
