import { ProbeError } from "../reasons.js";

/** One challenge of a WWW-Authenticate header: scheme lower-cased, parameter names lower-cased, values as sent. */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

const TOKEN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+/;
// RFC 7235 token68 (e.g. `Negotiate abc==`): we do not use it, but must step over it.
const TOKEN68 = /^[A-Za-z0-9._~+/-]+=*(?=[ \t]*(,|$))/;

/**
 * Parse a WWW-Authenticate header (RFC 7235): several challenges, each with
 * comma-separated parameters whose values are tokens or quoted strings with
 * backslash escapes. Throws `bad_response` when it is not one.
 */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  let current: Challenge | undefined;
  let i = skip(header, 0, " \t,");
  while (i < header.length) {
    const name = TOKEN.exec(header.slice(i))?.[0];
    if (name === undefined) throw badChallenge(header, i);
    let j = skip(header, i + name.length, " \t");
    if (current !== undefined && header[j] === "=" && header[j + 1] !== "=") {
      j = skip(header, j + 1, " \t");
      const [value, next] = header[j] === '"' ? readQuoted(header, j) : readBare(header, j);
      current.params[name.toLowerCase()] = value;
      i = next;
    } else {
      current = { scheme: name.toLowerCase(), params: {} };
      out.push(current);
      const token68 = TOKEN68.exec(header.slice(j))?.[0];
      i = token68 !== undefined ? j + token68.length : j;
    }
    i = skip(header, i, " \t,");
  }
  if (out.length === 0) throw badChallenge(header, 0);
  return out;
}

function readQuoted(header: string, start: number): [string, number] {
  let value = "";
  for (let i = start + 1; i < header.length; i++) {
    const c = header[i];
    if (c === "\\") {
      i++;
      value += header[i] ?? "";
    } else if (c === '"') {
      return [value, i + 1];
    } else {
      value += c;
    }
  }
  throw badChallenge(header, start);
}

function readBare(header: string, start: number): [string, number] {
  let end = start;
  while (end < header.length && header[end] !== "," && header[end] !== " " && header[end] !== "\t") end++;
  return [header.slice(start, end), end];
}

function skip(text: string, start: number, chars: string): number {
  let i = start;
  while (i < text.length && chars.includes(text[i] ?? "")) i++;
  return i;
}

function badChallenge(header: string, at: number): ProbeError {
  // A challenge carries no secret; at most its first 200 characters are shown.
  return new ProbeError("bad_response", `unparseable WWW-Authenticate header at character ${at}: ${JSON.stringify(header.slice(0, 200))}`);
}

/** The registry's preferred challenge we can answer: Bearer over Basic (as Docker does). */
export function pickChallenge(challenges: Challenge[]): Challenge | undefined {
  return challenges.find((c) => c.scheme === "bearer") ?? challenges.find((c) => c.scheme === "basic");
}

/** Split a token scope `repository:127.0.0.1:5000/ci/app:pull,push` from both ends: the name may hold a host:port. */
export function parseScope(scope: string): { type: string; name: string; actions: string[] } | undefined {
  const first = scope.indexOf(":");
  const last = scope.lastIndexOf(":");
  if (first < 0 || last === first) return undefined;
  return {
    type: scope.slice(0, first),
    name: scope.slice(first + 1, last),
    actions: scope
      .slice(last + 1)
      .split(",")
      .filter((a) => a !== ""),
  };
}
