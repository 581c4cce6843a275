import type { IncomingMessage, ServerResponse } from "node:http";
import { handleUsersApi } from "./api-users.js";
import { handleVariablesApi } from "./variables.js";
import { ciState, type CiState, type FakeJob, type FakePipeline, type FakeProject, type FakeRunner, type Role } from "./pipelines.js";
import type { FakeUser, GitlabState } from "./state.js";

/**
 * GitLab REST API v4 routes of the fake instance, field for field as
 * doc/api/pipelines.md, jobs.md and pipeline_triggers.md describe them.
 * Returns false when the path is not one it serves (the server then answers 404).
 *
 * Every request counts against the rate-limit plan (429 with Retry-After and
 * RateLimit-* headers, as Rack::Attack answers). The Users API routes are
 * delegated to api-users.ts before authentication, because they authenticate
 * tokens of their own (a PAT used as a registry password asks about itself).
 */
export function handleApi(state: GitlabState, req: IncomingMessage, res: ServerResponse, url: URL, body: string): boolean {
  const ci = ciState(state);
  const record = { at: Date.now(), method: req.method ?? "GET", path: url.pathname, status: 0 };
  ci.requests.push(record);
  ci.onApiRequest?.(record.method, url);
  res.on("finish", () => {
    record.status = res.statusCode;
  });
  if (rateLimited(ci, res)) return true;
  const path = url.pathname.slice("/api/v4".length);
  if (/^\/(users|personal_access_tokens|deploy_tokens)(\/|$)/.test(path)) return handleUsersApi(state, req, res, url, body);
  if (handleVariablesApi(state, req, res, url)) return true;
  const segments = path
    .split("/")
    .slice(1)
    .map((s) => decodeURIComponent(s));
  if (segments[0] !== "projects" || segments[1] === undefined) return false;
  const project = ci.findProject(segments[1]);
  const rest = segments.slice(2);
  const method = req.method ?? "GET";
  // The server parses paths against a fixed base; the client's Host header gives web_url its port.
  const origin = `http://${req.headers.host ?? "127.0.0.1"}`;
  if (method === "POST" && rest.join("/") === "trigger/pipeline") {
    triggerPipeline(ci, project, res, parseBody(req, body), origin);
    return true;
  }
  const user = authenticate(state, req);
  if (!user) {
    json(res, 401, { message: "401 Unauthorized" });
    return true;
  }
  const role = project ? roleOf(project, user) : undefined;
  if (!project || !role) {
    json(res, 404, { message: "404 Project Not Found" });
    return true;
  }
  return projectRoute(ci, { project, user, role, method, rest, url, origin, body: parseBody(req, body), res });
}

interface RouteContext {
  project: FakeProject;
  user: FakeUser;
  role: Role;
  method: string;
  rest: string[];
  url: URL;
  origin: string;
  body: Record<string, unknown>;
  res: ServerResponse;
}

function projectRoute(ci: CiState, c: RouteContext): boolean {
  const [a, b, d] = c.rest;
  const key = `${c.method} ${a ?? ""}${b !== undefined ? "/:id" : ""}${d !== undefined ? `/${d}` : ""}`;
  const baseUrl = c.origin;
  switch (key) {
    case "POST pipeline":
      createPipeline(ci, c);
      return true;
    case "GET pipelines":
      listPipelines(ci, c);
      return true;
    case "GET pipelines/:id":
      withPipeline(ci, c, b, (p) => json(c.res, 200, pipelineEntity(ci, p, baseUrl)));
      return true;
    case "GET pipelines/:id/variables":
      withPipeline(ci, c, b, (p) => {
        // Ci::PipelinePolicy read_pipeline_variable: Maintainers, and a Developer for the pipelines they created.
        const owner = p.user?.username === c.user.username;
        if (atLeast(c.role, "maintainer") || (atLeast(c.role, "developer") && owner)) json(c.res, 200, p.variables);
        else forbidden(c.res);
      });
      return true;
    case "GET pipelines/:id/jobs":
      withPipeline(ci, c, b, (p) => listJobs(ci, c, p));
      return true;
    case "POST pipelines/:id/cancel":
      if (!atLeast(c.role, "developer")) return forbidden(c.res);
      withPipeline(ci, c, b, (p) => {
        ci.cancel(p);
        json(c.res, 200, pipelineEntity(ci, p, baseUrl));
      });
      return true;
    case "GET jobs/:id":
      withJob(ci, c, b, (j) => json(c.res, 200, jobEntity(ci, j, baseUrl)));
      return true;
    case "GET jobs/:id/trace":
      withJob(ci, c, b, (j) => {
        c.res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
        c.res.end(j.trace);
      });
      return true;
    default:
      return false;
  }
}

function createPipeline(ci: CiState, c: RouteContext): void {
  if (!atLeast(c.role, "developer")) {
    forbidden(c.res);
    return;
  }
  const ref = stringField(c.body.ref) ?? c.url.searchParams.get("ref") ?? undefined;
  if (ref === undefined || ref === "") {
    json(c.res, 400, { error: "ref is missing" });
    return;
  }
  if (!c.project.refs.has(ref)) {
    json(c.res, 400, { message: { base: ["Reference not found"] } });
    return;
  }
  const variables = variableList(c.body.variables);
  const pipeline = ci.createPipeline(c.project, ref, "api", variables, c.user);
  json(c.res, 201, pipelineEntity(ci, pipeline, c.origin));
}

/** POST /projects/:id/trigger/pipeline: `token`, `ref`, `variables` (a hash); no PRIVATE-TOKEN needed. */
function triggerPipeline(
  ci: CiState,
  project: FakeProject | undefined,
  res: ServerResponse,
  body: Record<string, unknown>,
  origin: string,
): void {
  const token = stringField(body.token);
  if (!project || token === undefined || !project.triggerTokens.has(token)) {
    json(res, 404, { message: "404 Not Found" });
    return;
  }
  const ref = stringField(body.ref);
  if (ref === undefined || !project.refs.has(ref)) {
    json(res, 400, { message: { base: ["Reference not found"] } });
    return;
  }
  const hash = typeof body.variables === "object" && body.variables !== null ? (body.variables as Record<string, unknown>) : {};
  const variables = Object.entries(hash).map(([key, value]) => ({ key, value: String(value), variable_type: "env_var" }));
  const pipeline = ci.createPipeline(project, ref, "trigger", variables, null);
  json(res, 201, pipelineEntity(ci, pipeline, origin));
}

function listPipelines(ci: CiState, c: RouteContext): void {
  const q = c.url.searchParams;
  let list = [...ci.pipelines.values()].filter((p) => p.projectId === c.project.id);
  const status = q.get("status");
  const scope = q.get("scope");
  const ref = q.get("ref");
  const source = q.get("source");
  if (status) list = list.filter((p) => p.status === status);
  if (scope === "running" || scope === "pending") list = list.filter((p) => p.status === scope);
  if (scope === "finished") list = list.filter((p) => ["success", "failed", "canceled", "skipped"].includes(p.status));
  if (ref) list = list.filter((p) => p.ref === ref);
  if (source) list = list.filter((p) => p.source === source);
  list.sort((x, y) => (q.get("sort") === "asc" ? x.id - y.id : y.id - x.id));
  paginate(c, list, (p) => pipelineBasic(ci, p, c.origin));
}

function listJobs(ci: CiState, c: RouteContext, pipeline: FakePipeline): void {
  const scopes = [...c.url.searchParams.getAll("scope"), ...c.url.searchParams.getAll("scope[]")];
  // GitLab 13.5+: newest first.
  let jobs = [...pipeline.jobs].sort((x, y) => y.id - x.id);
  if (scopes.length > 0) jobs = jobs.filter((j) => scopes.includes(j.status));
  paginate(c, jobs, (j) => jobEntity(ci, j, c.origin));
}

/** Offset pagination with GitLab's X-* headers. */
function paginate<T>(c: RouteContext, items: T[], render: (item: T) => unknown): void {
  const perPage = Math.min(Math.max(Number(c.url.searchParams.get("per_page") ?? 20) || 20, 1), 100);
  const page = Math.max(Number(c.url.searchParams.get("page") ?? 1) || 1, 1);
  const totalPages = Math.max(Math.ceil(items.length / perPage), 1);
  c.res.setHeader("x-page", String(page));
  c.res.setHeader("x-per-page", String(perPage));
  c.res.setHeader("x-total", String(items.length));
  c.res.setHeader("x-total-pages", String(totalPages));
  c.res.setHeader("x-next-page", page < totalPages ? String(page + 1) : "");
  c.res.setHeader("x-prev-page", page > 1 ? String(page - 1) : "");
  json(c.res, 200, items.slice((page - 1) * perPage, page * perPage).map(render));
}

function withPipeline(ci: CiState, c: RouteContext, id: string | undefined, then: (p: FakePipeline) => void): void {
  const p = id !== undefined ? ci.pipelines.get(Number(id)) : undefined;
  if (!p || p.projectId !== c.project.id) json(c.res, 404, { message: "404 Not found" });
  else then(p);
}

function withJob(ci: CiState, c: RouteContext, id: string | undefined, then: (j: FakeJob) => void): void {
  const j = id !== undefined ? ci.jobs.get(Number(id)) : undefined;
  if (!j || ci.pipelines.get(j.pipelineId)?.projectId !== c.project.id) json(c.res, 404, { message: "404 Not found" });
  else then(j);
}

// ---- entities -------------------------------------------------------------

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

function seconds(from: number | null, to: number | null): number | null {
  if (from === null) return null;
  return Math.round(((to ?? Date.now()) - from) / 10) / 100;
}

function projectOf(ci: CiState, p: FakePipeline): FakeProject {
  const project = ci.projects.get(p.projectId);
  if (!project) throw new Error(`pipeline ${p.id} has no project`);
  return project;
}

/** The pipeline in lists: GitLab's PipelineBasic entity. */
function pipelineBasic(ci: CiState, p: FakePipeline, origin: string) {
  return {
    id: p.id,
    iid: p.iid,
    project_id: p.projectId,
    sha: p.sha,
    ref: p.ref,
    status: p.status,
    source: p.source,
    name: null,
    created_at: iso(p.createdAt),
    updated_at: iso(p.updatedAt),
    web_url: `${origin}/${projectOf(ci, p).path}/-/pipelines/${p.id}`,
  };
}

/** A single pipeline (create, get, cancel): the detailed entity. */
function pipelineEntity(ci: CiState, p: FakePipeline, origin: string) {
  return {
    ...pipelineBasic(ci, p, origin),
    before_sha: "0000000000000000000000000000000000000000",
    tag: false,
    yaml_errors: null,
    user: p.user ? userBasic(p.user, origin) : null,
    started_at: iso(p.startedAt),
    finished_at: iso(p.finishedAt),
    committed_at: null,
    duration: p.startedAt !== null && p.finishedAt !== null ? Math.round((p.finishedAt - p.startedAt) / 1000) : null,
    queued_duration: seconds(p.createdAt, p.startedAt),
    coverage: null,
    detailed_status: detailedStatus(ci, p),
  };
}

function detailedStatus(ci: CiState, p: FakePipeline) {
  const text = p.status === "success" ? "passed" : p.status;
  return {
    icon: `status_${p.status}`,
    text,
    label: text,
    group: p.status,
    tooltip: text,
    has_details: false,
    details_path: `/${projectOf(ci, p).path}/-/pipelines/${p.id}`,
    illustration: null,
    favicon: `/assets/ci_favicons/favicon_status_${p.status}.png`,
  };
}

function userBasic(u: FakeUser, origin: string) {
  return { id: u.id, username: u.username, name: u.name, state: u.state, avatar_url: null, web_url: `${origin}/${u.username}` };
}

function runnerEntity(r: FakeRunner) {
  return {
    id: r.id,
    description: r.description,
    ip_address: null,
    active: !r.paused,
    paused: r.paused,
    is_shared: r.isShared,
    runner_type: r.isShared ? "instance_type" : "project_type",
    name: r.name,
    online: true,
    status: "online",
  };
}

/** A job, as in GET /projects/:id/pipelines/:pipeline_id/jobs. `failure_reason` only on failed jobs. */
function jobEntity(ci: CiState, j: FakeJob, origin: string) {
  const p = ci.pipelines.get(j.pipelineId);
  if (!p) throw new Error(`job ${j.id} has no pipeline`);
  const project = projectOf(ci, p);
  return {
    id: j.id,
    status: j.status,
    stage: j.stage,
    name: j.name,
    ref: p.ref,
    tag: false,
    coverage: null,
    allow_failure: false,
    created_at: iso(j.createdAt),
    started_at: iso(j.startedAt),
    finished_at: iso(j.finishedAt),
    erased_at: null,
    duration: seconds(j.startedAt, j.finishedAt),
    // Live while the job waits, as GitLab computes it.
    queued_duration: seconds(j.queuedAt, j.startedAt),
    user: p.user ? userBasic(p.user, origin) : null,
    commit: {
      id: p.sha,
      short_id: p.sha.slice(0, 8),
      created_at: iso(p.createdAt),
      parent_ids: [],
      title: "ci-prober canary",
      message: "ci-prober canary\n",
      author_name: "Administrator",
      author_email: "admin@example.com",
      authored_date: iso(p.createdAt),
      committer_name: "Administrator",
      committer_email: "admin@example.com",
      committed_date: iso(p.createdAt),
      trailers: {},
      web_url: `${origin}/${project.path}/-/commit/${p.sha}`,
    },
    pipeline: pipelineBasic(ci, p, origin),
    ...(j.status === "failed" ? { failure_reason: j.failureReason ?? "unknown_failure" } : {}),
    web_url: `${origin}/${project.path}/-/jobs/${j.id}`,
    project: { ci_job_token_scope_enabled: false },
    artifacts: j.trace === "" ? [] : [{ file_type: "trace", size: Buffer.byteLength(j.trace), filename: "job.log", file_format: null }],
    runner: j.runner ? runnerEntity(j.runner) : null,
    runner_manager: null,
    artifacts_expire_at: null,
    archived: false,
    tag_list: j.tags,
  };
}

// ---- plumbing -------------------------------------------------------------

/** Rack::Attack's answer: 429, plain text, RateLimit-* headers, Retry-After when the plan has one. */
function rateLimited(ci: CiState, res: ServerResponse): boolean {
  const plan = ci.rateLimit;
  const now = Date.now();
  if (now - ci.windowStart >= 60_000) {
    ci.windowStart = now;
    ci.observed = 0;
  }
  ci.observed++;
  const limit = ci.limitPerMinute;
  const throttled = plan.remaining > 0 && (plan.status ?? 429) === 429;
  // A throttled answer says when to come back; any other, when the current period ends.
  const resetAt = throttled
    ? Math.ceil(now / 1000) + (plan.resetSeconds ?? plan.retryAfterSeconds ?? 1)
    : Math.ceil((ci.windowStart + 60_000) / 1000);
  if (!(throttled && plan.omitReset)) {
    res.setHeader("ratelimit-name", "throttle_authenticated_api");
    res.setHeader("ratelimit-limit", String(limit));
    res.setHeader("ratelimit-observed", String(throttled ? limit + 1 : ci.observed));
    res.setHeader("ratelimit-remaining", String(throttled ? 0 : Math.max(limit - ci.observed, 0)));
    res.setHeader("ratelimit-reset", String(resetAt));
    res.setHeader("ratelimit-resettime", new Date(resetAt * 1000).toUTCString());
  }
  if (plan.remaining <= 0) return false;
  plan.remaining--;
  if (!throttled) {
    const status = plan.status ?? 500;
    // Rails answers a 500 as JSON; a 502/503 comes from Workhorse or the load balancer as text.
    if (status === 500) json(res, 500, { message: "500 Internal Server Error" });
    else {
      res.writeHead(status, { "content-type": "text/plain" });
      res.end(status === 502 ? "502 Bad Gateway\n" : "503 Service Unavailable\n");
    }
    return true;
  }
  if (plan.retryAfterSeconds !== undefined) res.setHeader("retry-after", String(plan.retryAfterSeconds));
  res.writeHead(429, { "content-type": "text/plain" });
  res.end("Retry later\n");
  return true;
}

/** PRIVATE-TOKEN, or `Authorization: Bearer`, must be an issued API token of an active user. */
function authenticate(state: GitlabState, req: IncomingMessage): FakeUser | undefined {
  const header = req.headers["private-token"];
  const bearer = /^Bearer (.+)$/i.exec(req.headers.authorization ?? "")?.[1];
  const token = (Array.isArray(header) ? header[0] : header) ?? bearer;
  const username = token !== undefined ? state.apiTokens.get(token) : undefined;
  const user = username !== undefined ? state.users.get(username) : undefined;
  return user && user.state === "active" ? user : undefined;
}

const ROLES: Role[] = ["guest", "reporter", "developer", "maintainer", "owner"];

function roleOf(project: FakeProject, user: FakeUser): Role | undefined {
  // A project with no members listed is open to every user as a Developer; root is an admin everywhere.
  if (user.username === "root") return "owner";
  if (project.members.size === 0) return "developer";
  return project.members.get(user.username);
}

function atLeast(role: Role, min: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(min);
}

function forbidden(res: ServerResponse): true {
  json(res, 403, { message: "403 Forbidden" });
  return true;
}

function json(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(value));
}

function stringField(v: unknown): string | undefined {
  return typeof v === "string" ? v : typeof v === "number" ? String(v) : undefined;
}

/** `variables` of POST /pipeline: an array of {key, value, variable_type?}. */
function variableList(v: unknown): FakePipeline["variables"] {
  if (!Array.isArray(v)) return [];
  return v.flatMap((item: unknown) => {
    if (typeof item !== "object" || item === null) return [];
    const { key, value, variable_type } = item as Record<string, unknown>;
    if (typeof key !== "string") return [];
    return [{ key, value: String(value ?? ""), variable_type: typeof variable_type === "string" ? variable_type : "env_var" }];
  });
}

/** JSON, or a form (`variables[KEY]=value` becomes a hash), as Grape accepts both. */
function parseBody(req: IncomingMessage, body: string): Record<string, unknown> {
  if (body === "") return {};
  if ((req.headers["content-type"] ?? "").includes("application/json")) {
    const data: unknown = JSON.parse(body);
    return typeof data === "object" && data !== null ? (data as Record<string, unknown>) : {};
  }
  const out: Record<string, unknown> = {};
  const variables: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(body)) {
    const m = /^variables\[(.+)\]$/.exec(k);
    if (m?.[1]) variables[m[1]] = v;
    else out[k] = v;
  }
  if (Object.keys(variables).length > 0) out.variables = variables;
  return out;
}
