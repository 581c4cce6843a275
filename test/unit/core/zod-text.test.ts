import { describe, expect, test } from "vitest";
import { z } from "zod";
import { zodIssueText, zodPath } from "../../../src/zod-text.js";

describe("zodPath", () => {
  test.each<[string, PropertyKey[], string]>([
    ["the root", [], "(top level)"],
    ["an identifier key", ["interval"], "interval"],
    ["a list index", ["runners", 1, "interval"], "runners[1].interval"],
    ["a key that is not an identifier", ["auths", "registry.example:5000", "auth"], 'auths["registry.example:5000"].auth'],
    ["an index at the root", [0, "id"], "[0].id"],
  ])("%s", (_, path, text) => {
    expect(zodPath(path)).toBe(text);
  });
});

describe("zodIssueText", () => {
  test("names the first issue's path, then its message", () => {
    const parsed = z.object({ items: z.array(z.object({ id: z.number() })) }).safeParse({ items: [{ id: "x" }] });
    expect(parsed.success).toBe(false);
    expect(zodIssueText(parsed.error?.issues[0], "none")).toBe("items[0].id: Invalid input: expected number, received string");
  });

  test("says the caller's text when there is no issue", () => {
    expect(zodIssueText(undefined, "not a Docker config")).toBe("not a Docker config");
  });
});
