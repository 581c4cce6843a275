/*
 * /status for a thousand runners: a page of runners (and only their probes
 * and checks) instead of one document of every probe's log and history, which
 * for 1,000 runners is tens of megabytes per request. `?runner=NAME` (repeat
 * it for several) picks runners by name; `limit` and `offset` page through
 * the rest; `summary` counts everything, whatever the page.
 */

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 1000;

export interface StatusQuery {
  runners: string[];
  limit: number;
  offset: number;
}

/** The query of a /status request, or the one-line error for a 400. */
export function parseStatusQuery(search: URLSearchParams): StatusQuery | { error: string } {
  const limit = integer(search.get("limit"), DEFAULT_LIMIT);
  if (limit === undefined || limit < 1 || limit > MAX_LIMIT)
    return { error: `/status: limit: expected an integer from 1 to ${MAX_LIMIT}, got ${JSON.stringify(search.get("limit"))}` };
  const offset = integer(search.get("offset"), 0);
  if (offset === undefined || offset < 0)
    return { error: `/status: offset: expected an integer from 0, got ${JSON.stringify(search.get("offset"))}` };
  return { runners: search.getAll("runner"), limit, offset };
}

function integer(text: string | null, fallback: number): number | undefined {
  if (text === null || text === "") return fallback;
  return /^\d{1,9}$/.test(text) ? Number(text) : undefined;
}

interface StatusDocument {
  runners: { name: string }[];
  probes: { key: string; last: { runner: string; success: boolean } | null }[];
  credential_checks: { runner: string }[];
  [field: string]: unknown;
}

/**
 * One page of the /status document. Probes of no runner (a registry's
 * certificate, the GitLab canary) come with the first page of an unfiltered
 * query. `page.next` is the path of the next page, or null on the last.
 */
export function statusPage(whole: unknown, query: StatusQuery): unknown {
  const doc = whole as StatusDocument;
  const named = new Set(query.runners);
  const matching = named.size > 0 ? doc.runners.filter((r) => named.has(r.name)) : doc.runners;
  const page = matching.slice(query.offset, query.offset + query.limit);
  const inPage = new Set(page.map((r) => r.name));
  const known = new Set(doc.runners.map((r) => r.name));
  const runnerOf = (p: StatusDocument["probes"][number]) => p.last?.runner ?? p.key.split("|")[1] ?? "";
  const withoutRunner = named.size === 0 && query.offset === 0;
  const probes = doc.probes.filter((p) => inPage.has(runnerOf(p)) || (withoutRunner && !known.has(runnerOf(p))));
  const end = query.offset + page.length;
  const next = end < matching.length ? nextPath(query, end) : null;
  return {
    ...doc,
    summary: {
      runners: doc.runners.length,
      probes: doc.probes.length,
      failing: doc.probes.filter((p) => p.last !== null && !p.last.success).length,
    },
    page: { offset: query.offset, limit: query.limit, runners: matching.length, next },
    runners: page,
    probes,
    credential_checks: doc.credential_checks.filter((c) => inPage.has(c.runner)),
  };
}

function nextPath(query: StatusQuery, offset: number): string {
  const params = new URLSearchParams();
  for (const r of query.runners) params.append("runner", r);
  params.set("limit", String(query.limit));
  params.set("offset", String(offset));
  return `/status?${params.toString()}`;
}
