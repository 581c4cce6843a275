import { readFileSync } from "node:fs";
import { parseDocument } from "yaml";
import type { z } from "zod";
import { errnoText, InputError } from "../errors.js";
import { resolveConfig, type Config } from "./resolve.js";
import { configSchema } from "./schema.js";
import { zodPath } from "../zod-text.js";

/** Read, expand and validate a config file; throws InputError with one line naming the file and key. */
export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new InputError(`${file}: cannot read: ${errnoText(err)}`);
  }
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  const first = doc.errors[0];
  if (first) {
    const before = text.slice(0, first.pos[0]).split("\n");
    const where = `line ${before.length} column ${(before.at(-1)?.length ?? 0) + 1}: `;
    throw new InputError(`${file}: ${where}invalid YAML: ${first.message.split("\n")[0]}`);
  }
  const data: unknown = doc.toJS() ?? {};
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new InputError(`${file}: expected a mapping of settings at the top level`);
  }
  const expanded = expandEnv(data, [], file, env);
  const parsed = configSchema.safeParse(expanded, { reportInput: true });
  if (!parsed.success) throw new InputError(`${file}: ${formatIssue(parsed.error.issues[0])}`);
  return resolveConfig(parsed.data, file, env);
}

/** Expand ${VAR} in every string of the parsed YAML; an unset variable is an error naming the key. */
function expandEnv(value: unknown, path: (string | number)[], file: string, env: NodeJS.ProcessEnv): unknown {
  if (typeof value === "string") {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const v = env[name];
      if (v === undefined) throw new InputError(`${file}: ${zodPath(path)}: environment variable ${name} is not set`);
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => expandEnv(v, [...path, i], file, env));
  if (typeof value === "object" && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = expandEnv(v, [...path, k], file, env);
    return out;
  }
  return value;
}

function formatIssue(issue: z.core.$ZodIssue | undefined): string {
  if (!issue) return "invalid configuration";
  const where = zodPath(issue.path);
  switch (issue.code) {
    case "unrecognized_keys": {
      const key = issue.keys[0] ?? "";
      return `${zodPath([...issue.path, key])}: unknown key`;
    }
    case "invalid_type": {
      if (issue.input === undefined) return `${where}: missing, expected ${issue.expected}`;
      return `${where}: expected ${issue.expected}, got ${describe(issue.input)}`;
    }
    case "invalid_value":
      return `${where}: ${issue.message.startsWith("expected") ? issue.message : `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`}, got ${describe(issue.input)}`;
    case "too_small":
      return `${where}: ${issue.message.startsWith("expected") ? issue.message : "expected a non-empty value"}`;
    default:
      return `${where}: ${issue.message}${issue.code === "invalid_format" && issue.input !== undefined && !issue.message.includes("got") ? `, got ${describe(issue.input)}` : ""}`;
  }
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return JSON.stringify(value);
}
