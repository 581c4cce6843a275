import type { GitlabConfig } from "../config/resolve.js";
import { runnerCredentials, type CredentialOptions } from "../credentials/index.js";
import type { Credential, Runner } from "../types.js";
import type { GitlabClient } from "./client.js";
import { crawlVariables, holderName, VARIABLE, type Crawl, type HeldVariable } from "./variables.js";

/**
 * The DOCKER_AUTH_CONFIG values GitLab holds, as runners of their own: each
 * variable becomes a "runner" named after its holder (`gitlab:group/<full_path>`,
 * `gitlab:project/<path>`, `gitlab:instance`), so its credentials get the same
 * login probe and owner checks as a runner's, and their series carry the holder.
 */
export interface HeldVariableView {
  /** The holder as a runner label, with `@scope` for a variable limited to an environment scope. */
  runner: string;
  /** `gitlab:group/<full_path>#DOCKER_AUTH_CONFIG`. */
  source: string;
  environment_scope: string;
  masked: boolean;
  hidden: boolean;
  protected: boolean;
  variable_type: string;
  /** Projects (of those crawled) whose jobs get this value: it is the nearest one up their chain. */
  effective_projects: number;
  /** Up to 20 of them, by path. */
  projects: string[];
  /** The variable that every project below gets instead, when this one is effective for none. */
  hidden_by: string | null;
  /** Why no credential could be read from it (hidden by GitLab), never a guess at its value. */
  unreadable: string | null;
}

export interface Held {
  /** One per variable, in crawl order; a hidden one has no source to read (its row says why). */
  runners: Runner[];
  views: HeldVariableView[];
  /** Per runner name: the source that hides its whole value for every project below, if one does. */
  hiddenBy: Map<string, string>;
  errors: string[];
  crawl: Crawl;
}

const SHOWN_PROJECTS = 20;

/** Turn a crawl into holders, each with the projects whose jobs use it (SPEC.md: project, nearest group up the chain, instance). */
export function heldFromCrawl(crawl: Crawl): Held {
  const effective = effectiveByProject(crawl);
  const runners: Runner[] = [];
  const views: HeldVariableView[] = [];
  const hiddenBy = new Map<string, string>();
  for (const v of crawl.variables) {
    const name = variableRunner(v);
    const source = variableSource(v);
    const below = projectsBelow(crawl, v);
    const mine = below.filter((p) => effective.get(p) === v);
    const winner =
      mine.length === 0 && v.environmentScope === "*"
        ? below.map((p) => effective.get(p)).find((w) => w !== undefined && w !== v)
        : undefined;
    if (winner) hiddenBy.set(name, variableSource(winner));
    views.push({
      runner: name,
      source,
      environment_scope: v.environmentScope,
      masked: v.masked,
      hidden: v.hidden,
      protected: v.protected,
      variable_type: v.variableType,
      effective_projects: mine.length,
      projects: mine.slice(0, SHOWN_PROJECTS).sort(),
      hidden_by: winner ? variableSource(winner) : null,
      unreadable: v.value === null ? `${source}: masked and hidden: GitLab does not return its value, so ci-prober cannot check it` : null,
    });
    runners.push(holderRunner(name, source, v.value));
  }
  return { runners, views, hiddenBy, errors: crawl.errors, crawl };
}

/** Crawl and turn into holders. */
export async function crawlHeld(client: GitlabClient, gitlab: GitlabConfig, signal: AbortSignal): Promise<Held> {
  return heldFromCrawl(await crawlVariables(client, gitlab.variables ?? true, signal));
}

/**
 * The credentials of every holder, marked as for a runner, then shadowed as a
 * whole where a nearer variable hides this one for every project below it
 * (one value only: a project's DOCKER_AUTH_CONFIG replaces its group's, never merged).
 */
export async function heldCredentials(held: Held, opts: CredentialOptions): Promise<Credential[]> {
  const out: Credential[] = [];
  for (const runner of held.runners) out.push(...(await holderCredentials(held, runner, opts)));
  return out;
}

/** One holder's credentials: its value's, shadowed as a whole where a nearer variable wins, or the row saying it cannot be read. */
export async function holderCredentials(held: Held, runner: Runner, opts: CredentialOptions): Promise<Credential[]> {
  const view = held.views.find((v) => v.runner === runner.name);
  if (view?.unreadable != null) return [unreadable(view)];
  return shadowHeld(held, runner.name, await runnerCredentials(runner, opts));
}

/** The last crawl of the GitLab-held values, kept by the daemon between plans (one per process, replaced whole by each crawl). */
export class HeldStore {
  current: Held | undefined;
}

/** Apply the whole-value shadowing of the holders to one holder's credentials. */
export function shadowHeld(held: Held, runner: string, creds: Credential[]): Credential[] {
  const view = held.views.find((v) => v.runner === runner);
  const by = held.hiddenBy.get(runner);
  return creds.map((c) => ({
    ...c,
    ...(view ? { environmentScope: view.environment_scope } : {}),
    ...(by !== undefined && !c.error ? { inUse: false, shadowedBy: sameKey(c, by) } : {}),
  }));
}

/** The winner's entry for the same key when the winning value has one, else the winning variable itself. */
function sameKey(c: Credential, winner: string): string {
  const key = c.source.slice(c.source.indexOf(`#${VARIABLE}`) + `#${VARIABLE}`.length);
  return key.startsWith("#") ? `${winner}${key}` : winner;
}

/** `credentials --gitlab` without a `gitlab:` section (or without a token) has nothing to crawl. */
export async function gitlabHeldCredentials(
  client: GitlabClient,
  gitlab: GitlabConfig,
  opts: CredentialOptions,
): Promise<{ credentials: Credential[]; errors: string[]; held: Held }> {
  const held = await crawlHeld(client, gitlab, opts.signal);
  return { credentials: await heldCredentials(held, opts), errors: held.errors, held };
}

function unreadable(view: HeldVariableView): Credential {
  return {
    runner: view.runner,
    registry: "*",
    username: "",
    kind: "unknown",
    secretType: "password",
    source: view.source,
    environmentScope: view.environment_scope,
    inUse: false,
    shadowedBy: view.hidden_by,
    error: { reason: "credential_missing", message: view.unreadable ?? view.source },
  };
}

/** A holder as a runner: its DOCKER_AUTH_CONFIG is the only source; probes go direct (no engine stands behind a variable). */
function holderRunner(name: string, source: string, value: string | null): Runner {
  return {
    name,
    mode: "direct",
    source,
    dockerHost: "unix:///var/run/docker.sock",
    images: [],
    ...(value !== null ? { dockerAuthConfig: { value, source } } : {}),
  };
}

export function variableRunner(v: HeldVariable): string {
  const base = holderName(v.holder);
  return v.environmentScope === "*" ? base : `${base}@${v.environmentScope}`;
}

export function variableSource(v: HeldVariable): string {
  const base = `${holderName(v.holder)}#${VARIABLE}`;
  return v.environmentScope === "*" ? base : `${base}[environment_scope=${v.environmentScope}]`;
}

/**
 * For each project, the DOCKER_AUTH_CONFIG its jobs get (those without an
 * environment, so only scope `*` counts): its own, else the nearest group's up
 * the chain, else the instance's; undefined when none holds one (the runner's
 * own value then applies). A hidden value still wins: GitLab sends it to the job.
 */
function effectiveByProject(crawl: Crawl): Map<string, HeldVariable> {
  const unscoped = crawl.variables.filter((v) => v.environmentScope === "*");
  const byHolder = new Map(unscoped.map((v) => [`${v.holder.kind}:${v.holder.path}`, v]));
  const groups = new Map(crawl.groups.map((g) => [g.id, g]));
  const out = new Map<string, HeldVariable>();
  for (const p of crawl.projects) {
    let found = byHolder.get(`project:${p.path}`);
    for (
      let g = p.groupId === null ? undefined : groups.get(p.groupId);
      !found && g;
      g = g.parentId === null ? undefined : groups.get(g.parentId)
    ) {
      found = byHolder.get(`group:${g.fullPath}`);
    }
    found ??= byHolder.get("instance:");
    if (found) out.set(p.path, found);
  }
  return out;
}

/** The crawled projects a variable applies to: its own project, every project under its group, every project for the instance. */
function projectsBelow(crawl: Crawl, v: HeldVariable): string[] {
  if (v.holder.kind === "project") return [v.holder.path];
  if (v.holder.kind === "instance") return crawl.projects.map((p) => p.path);
  const prefix = `${v.holder.path}/`;
  return crawl.projects.filter((p) => p.path.startsWith(prefix)).map((p) => p.path);
}
