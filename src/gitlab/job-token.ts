import { z } from "zod";
import type { GitlabConfig } from "../config/resolve.js";
import { normalizeRegistry } from "../image.js";
import type { GitlabClient } from "./client.js";

const projectPrefixSchema = z.array(z.looseObject({ container_registry_image_prefix: z.string().nullish() }));

/**
 * The dependency proxy answers on the instance's own host and port, and jobs
 * name it with the port written out (CI_DEPENDENCY_PROXY_SERVER is
 * `gitlab.example.jp:443`), so that is the path the job token is keyed under.
 */
export function dependencyProxyPath(url: string): string {
  const u = new URL(url);
  const port = u.port !== "" ? u.port : u.protocol === "http:" ? "80" : "443";
  return `${u.hostname.toLowerCase()}:${port}`;
}

/**
 * The container registry's host[:port] as GitLab names it in a project's
 * `container_registry_image_prefix` (`registry.example.jp/group/project`);
 * undefined when the instance has no registry or no project this token sees.
 */
export async function learnRegistryHost(client: GitlabClient, signal: AbortSignal): Promise<string | undefined> {
  const projects = await client.request("GET", "/projects", {
    signal,
    schema: projectPrefixSchema,
    query: { per_page: 1, order_by: "id", sort: "asc" },
  });
  const prefix = projects[0]?.container_registry_image_prefix;
  if (!prefix) return undefined;
  return normalizeRegistry(prefix.split("/")[0] ?? prefix);
}

const learnt = new Map<string, { at: number; host: string | undefined }>();

/**
 * The registry paths the job's own token answers for: the instance's registry
 * (from `gitlab.registry`, else the API, asked at most once per checks
 * interval) and its dependency proxy. A failed question leaves the registry
 * out; the dependency proxy is always known.
 */
export async function jobTokenPaths(
  gitlab: GitlabConfig,
  client: () => GitlabClient,
  signal: AbortSignal,
  now = Date.now(),
): Promise<string[]> {
  let host = gitlab.registry;
  if (host === undefined) {
    const cached = learnt.get(gitlab.url);
    if (cached && now - cached.at < gitlab.intervalMs) host = cached.host;
    else {
      host = await learnRegistryHost(client(), signal).catch(() => cached?.host);
      // One instance per config: the map holds at most a handful of URLs for the life of the process.
      learnt.set(gitlab.url, { at: now, host });
    }
  }
  const proxy = dependencyProxyPath(gitlab.url);
  return host !== undefined && host !== proxy ? [host, proxy] : [proxy];
}
