import type { z } from "zod";
import { ProbeError } from "./reasons.js";

/**
 * The one way a far end's JSON is read: text → JSON → zod schema, and either
 * failure is `bad_response` with the caller's one-line text (naming the
 * endpoint; never echoing the body, which may hold a token).
 */
export interface JsonTexts {
  /** The text when the body is not JSON at all. */
  notJson: string;
  /** The text when it is JSON of the wrong shape, from the first zod issue. */
  badShape: (issue: z.core.$ZodIssue | undefined) => string;
}

export function jsonWithSchema<T>(text: string, schema: z.ZodType<T>, say: JsonTexts): T {
  return withSchema(jsonOf(text, say.notJson), schema, say.badShape);
}

/** JSON text parsed, or `bad_response` saying `notJson`. */
export function jsonOf(text: string, notJson: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new ProbeError("bad_response", notJson);
  }
}

/** Data of a schema's shape, or `bad_response` with the text for its first issue. */
export function withSchema<T>(data: unknown, schema: z.ZodType<T>, badShape: (issue: z.core.$ZodIssue | undefined) => string): T {
  const parsed = schema.safeParse(data);
  if (!parsed.success) throw new ProbeError("bad_response", badShape(parsed.error.issues[0]));
  return parsed.data;
}
