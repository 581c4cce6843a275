import type { Runner } from "../types.js";

/**
 * What a runner's `pull_policy` hides, or undefined. With `if-not-present` a job
 * starts from a cached image and sends no credential; `never` never pulls; and
 * GitLab Runner falls back through a list (`[always, if-not-present]`), so a
 * failed pull with a broken credential still starts the job from the cache. A
 * broken credential then shows only once the cache is gone (a new host, a
 * prune, a new tag).
 */
export function cachedImagePolicy(runner: Pick<Runner, "pullPolicy">): string | undefined {
  const hiding = (runner.pullPolicy ?? []).filter((p) => p === "if-not-present" || p === "never");
  if (hiding.length === 0) return undefined;
  const policy = JSON.stringify(runner.pullPolicy);
  return `pull_policy ${policy} uses cached images without any credential: a broken credential stays hidden until the cache is gone`;
}
