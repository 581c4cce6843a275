import { expect, test } from "vitest";
import { expectLogLine, type LineMatch } from "../../helpers/log.js";

const LOG = ["+3ms POST /images/create?fromImage=busybox -> 200, reading progress", "+9ms pulled busybox:latest"];

test.each<[string, LineMatch, boolean]>([
  ["one line that contains and ends with", { includes: "POST /images/create", endsWith: "-> 200, reading progress" }, true],
  ["contains on one line, ends with on another", { includes: "POST /images/create", endsWith: "pulled busybox:latest" }, false],
  ["contains text that ends the line", { includes: "pulled busybox", endsWith: "busybox:latest" }, true],
  ["ends with text that is only inside a line", { endsWith: "POST /images/create" }, false],
  ["contains, with regex characters taken literally", { includes: "create?fromImage" }, true],
  ["a pattern", /^\+\d+ms pulled /, true],
])("%s", (_, match, found) => {
  if (found) expectLogLine(LOG, match);
  else expect(() => expectLogLine(LOG, match)).toThrow(/to deep equally contain/);
});
