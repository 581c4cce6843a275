import { z } from "zod";
import { HttpStatusError } from "../reasons.js";
import { registerSecret } from "../secret.js";
import type { GitlabClient } from "./client.js";

/**
 * DOCKER_AUTH_CONFIG held in GitLab as CI/CD variables (SPEC.md, Which
 * credential a runner uses, 1a): instance (`/admin/ci/variables`), group and
 * project variables, read through the v4 API page by page (`x-next-page`, or
 * the keyset `Link` header where GitLab offers it). Every request goes through
 * the client, so through the instance's API budget and its 429/Retry-After
 * handling.
 */

export const VARIABLE = "DOCKER_AUTH_CONFIG";
const PER_PAGE = 100;
/** Requests in flight at once during a crawl; the budget decides the rate, this only bounds the sockets. */
const PARALLEL = 8;

const bool = z
  .boolean()
  .nullish()
  .transform((b) => b ?? false);

/** A CI/CD variable as doc/api/project_level_variables.md, group_level_variables.md and instance_level_ci_variables.md give it. */
const variableSchema = z.looseObject({
  key: z.string(),
  // A hidden variable's value is not returned (null), and an instance variable has no environment_scope.
  value: z.string().nullable(),
  variable_type: z
    .string()
    .nullish()
    .transform((t) => t ?? "env_var"),
  protected: bool,
  masked: bool,
  hidden: bool,
  raw: bool,
  environment_scope: z
    .string()
    .nullish()
    .transform((s) => s ?? "*"),
});
const variableListSchema = z.array(variableSchema);

const groupSchema = z.looseObject({
  id: z.number(),
  full_path: z.string(),
  parent_id: z
    .number()
    .nullish()
    .transform((p) => p ?? null),
});
const groupListSchema = z.array(groupSchema);
const projectSchema = z.looseObject({
  id: z.number(),
  path_with_namespace: z.string(),
  namespace: z.looseObject({ id: z.number(), kind: z.string(), full_path: z.string() }),
});
const projectListSchema = z.array(projectSchema);

export type HolderKind = "instance" | "group" | "project";

export interface Holder {
  kind: HolderKind;
  /** A group's full_path, a project's path_with_namespace, "" for the instance. */
  path: string;
}

/** One DOCKER_AUTH_CONFIG variable. `value` is null when GitLab hides it (masked and hidden). */
export interface HeldVariable {
  holder: Holder;
  value: string | null;
  variableType: string;
  protected: boolean;
  masked: boolean;
  hidden: boolean;
  raw: boolean;
  environmentScope: string;
}

export interface CrawledGroup {
  id: number;
  fullPath: string;
  parentId: number | null;
}

export interface CrawledProject {
  id: number;
  path: string;
  /** The group the project sits in, or null for a user's personal namespace. */
  groupId: number | null;
}

export interface Crawl {
  groups: CrawledGroup[];
  projects: CrawledProject[];
  variables: HeldVariable[];
  /** One line per holder whose variables could not be read, naming it and the endpoint. */
  errors: string[];
  /** Requests sent (pages included). */
  requests: number;
}

/** What to crawl: every group and project the token sees, or these full paths (groups with all below them, or projects). */
export type CrawlTarget = true | readonly string[];

interface Ctx {
  client: GitlabClient;
  signal: AbortSignal;
  requests: number;
}

/** Read every DOCKER_AUTH_CONFIG variable of the instance, its groups and its projects. Throws only when the signal aborts. */
export async function crawlVariables(client: GitlabClient, target: CrawlTarget, signal: AbortSignal): Promise<Crawl> {
  const ctx: Ctx = { client, signal, requests: 0 };
  const errors: string[] = [];
  const { groups, projects } = target === true ? await everything(ctx, errors) : await listed(ctx, target, errors);
  const instance = await holderVariables(ctx, { kind: "instance", path: "" }, "/admin/ci/variables", errors);
  const fromGroups = await inParallel(groups, (g) =>
    holderVariables(ctx, { kind: "group", path: g.fullPath }, `/groups/${g.id}/variables`, errors),
  );
  const fromProjects = await inParallel(projects, (p) =>
    holderVariables(ctx, { kind: "project", path: p.path }, `/projects/${p.id}/variables`, errors),
  );
  const variables = [...instance, ...fromGroups.flat(), ...fromProjects.flat()];
  return { groups, projects, variables, errors, requests: ctx.requests };
}

async function everything(ctx: Ctx, errors: string[]): Promise<{ groups: CrawledGroup[]; projects: CrawledProject[] }> {
  const groups = await listAll(ctx, "/groups", { all_available: true }, groupListSchema, errors);
  // Keyset pagination where GitLab offers it: the projects list, ordered by id.
  const projects = await listAll(
    ctx,
    "/projects",
    { simple: true, pagination: "keyset", order_by: "id", sort: "asc" },
    projectListSchema,
    errors,
  );
  return { groups: (groups ?? []).map(toGroup), projects: (projects ?? []).map(toProject) };
}

/** Listed paths: a group brings its ancestors (their variables apply below), its descendants and its projects; a project its groups. */
async function listed(
  ctx: Ctx,
  paths: readonly string[],
  errors: string[],
): Promise<{ groups: CrawledGroup[]; projects: CrawledProject[] }> {
  const groups = new Map<number, CrawledGroup>();
  const projects = new Map<number, CrawledProject>();
  for (const path of paths) {
    const group = await getOne(ctx, `/groups/${encodeURIComponent(path)}`, groupSchema);
    if (group) {
      for (const g of [group, ...((await listAll(ctx, `/groups/${group.id}/descendant_groups`, {}, groupListSchema, errors)) ?? [])])
        groups.set(g.id, toGroup(g));
      const below = await listAll(
        ctx,
        `/groups/${group.id}/projects`,
        { include_subgroups: true, simple: true },
        projectListSchema,
        errors,
      );
      for (const p of below ?? []) projects.set(p.id, toProject(p));
      await addAncestors(ctx, group.full_path, groups);
      continue;
    }
    const project = await getOne(ctx, `/projects/${encodeURIComponent(path)}`, projectSchema);
    if (!project) {
      errors.push(`gitlab.variables: ${path}: no group or project of that path (or the token cannot see it)`);
      continue;
    }
    projects.set(project.id, toProject(project));
    if (project.namespace.kind === "group") await addAncestors(ctx, `${project.namespace.full_path}/-`, groups);
  }
  return { groups: [...groups.values()], projects: [...projects.values()] };
}

/** The groups above a full path (its own last segment excluded), read by path. */
async function addAncestors(ctx: Ctx, fullPath: string, into: Map<number, CrawledGroup>): Promise<void> {
  const parts = fullPath.split("/");
  for (let i = 1; i < parts.length; i++) {
    const path = parts.slice(0, i).join("/");
    if ([...into.values()].some((g) => g.fullPath === path)) continue;
    const g = await getOne(ctx, `/groups/${encodeURIComponent(path)}`, groupSchema);
    if (g) into.set(g.id, toGroup(g));
  }
}

/** A holder's DOCKER_AUTH_CONFIG variables; a refusal (403: not an owner/administrator) is reported, never guessed. */
async function holderVariables(ctx: Ctx, holder: Holder, path: string, errors: string[]): Promise<HeldVariable[]> {
  const list = await listAll(ctx, path, {}, variableListSchema, errors, holder);
  return (list ?? [])
    .filter((v) => v.key === VARIABLE)
    .map((v) => {
      // A value is a secret the moment it is read: scrub() must know it before anything could print it.
      if (v.value !== null) registerSecret(v.value);
      return {
        holder,
        value: v.value,
        variableType: v.variable_type,
        protected: v.protected,
        masked: v.masked,
        hidden: v.hidden,
        raw: v.raw,
        environmentScope: v.environment_scope,
      };
    });
}

/**
 * Every page of a list: `Link: <…>; rel="next"` (keyset) or `x-next-page` (offset).
 * Undefined, with an error line, when it cannot be read.
 */
async function listAll<T>(
  ctx: Ctx,
  path: string,
  query: Record<string, string | number | boolean>,
  schema: z.ZodType<T[]>,
  errors: string[],
  holder?: Holder,
): Promise<T[] | undefined> {
  const out: T[] = [];
  let next: { path: string; query: Record<string, string | number | boolean> } | undefined = {
    path,
    query: { per_page: PER_PAGE, ...query },
  };
  while (next) {
    const page: { path: string; query: Record<string, string | number | boolean> } = next;
    let headers: Record<string, string | string[] | undefined> = {};
    try {
      ctx.requests++;
      out.push(
        ...(await ctx.client.request("GET", page.path, { signal: ctx.signal, schema, query: page.query, onHeaders: (h) => (headers = h) })),
      );
    } catch (err) {
      ctx.signal.throwIfAborted();
      errors.push(`${holder ? `${holderName(holder)}: ` : ""}${err instanceof Error ? err.message : String(err)}`);
      return undefined;
    }
    next = nextPage(page, headers);
  }
  return out;
}

function nextPage(
  page: { path: string; query: Record<string, string | number | boolean> },
  headers: Record<string, string | string[] | undefined>,
): { path: string; query: Record<string, string | number | boolean> } | undefined {
  const link = first(headers.link);
  const rel = link
    ?.split(",")
    .map((p) => /<([^>]+)>\s*;\s*rel="?next"?/.exec(p.trim())?.[1])
    .find((u) => u !== undefined);
  if (rel !== undefined) {
    const url = new URL(rel);
    const at = url.pathname.indexOf("/api/v4/");
    if (at !== -1) return { path: url.pathname.slice(at + "/api/v4".length), query: Object.fromEntries(url.searchParams) };
  }
  const n = first(headers["x-next-page"])?.trim();
  if (n !== undefined && /^\d+$/.test(n)) return { path: page.path, query: { ...page.query, page: Number(n) } };
  return undefined;
}

async function getOne<T>(ctx: Ctx, path: string, schema: z.ZodType<T>): Promise<T | undefined> {
  try {
    ctx.requests++;
    return await ctx.client.request("GET", path, { signal: ctx.signal, schema });
  } catch (err) {
    ctx.signal.throwIfAborted();
    if (err instanceof HttpStatusError && err.status === 404) return undefined;
    throw err;
  }
}

async function inParallel<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      const item = items[i] as T;
      out[i] = await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, items.length) }, worker));
  return out;
}

function toGroup(g: z.output<typeof groupSchema>): CrawledGroup {
  return { id: g.id, fullPath: g.full_path, parentId: g.parent_id };
}

function toProject(p: z.output<typeof projectSchema>): CrawledProject {
  return { id: p.id, path: p.path_with_namespace, groupId: p.namespace.kind === "group" ? p.namespace.id : null };
}

/** The holder as a runner label: `gitlab:instance`, `gitlab:group/<full_path>`, `gitlab:project/<path_with_namespace>`. */
export function holderName(holder: Holder): string {
  return holder.kind === "instance" ? "gitlab:instance" : `gitlab:${holder.kind}/${holder.path}`;
}

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
