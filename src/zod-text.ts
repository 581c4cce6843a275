/**
 * The one way a zod issue becomes text, for every boundary (ci-prober's config,
 * runner and Docker configs, web config, GitLab answers, manifests): a path as a
 * reader writes it (`runners[1].interval`, `auths["a.b"]`), then the issue.
 */
export interface ZodIssueLike {
  readonly path: readonly PropertyKey[];
  readonly message: string;
}

/** `runners[1].interval`; a key that is not an identifier is quoted (`auths["r.example"]`); `(top level)` for the root. */
export function zodPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(String(part))) out += out === "" ? String(part) : `.${String(part)}`;
    else out += `[${JSON.stringify(String(part))}]`;
  }
  return out === "" ? "(top level)" : out;
}

/** `<path>: <message>` of an issue, or `absent` when there is none. */
export function zodIssueText(issue: ZodIssueLike | undefined, absent: string): string {
  return issue ? `${zodPath(issue.path)}: ${issue.message}` : absent;
}
