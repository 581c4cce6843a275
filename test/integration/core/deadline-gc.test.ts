import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);

// The bug this module exists for only shows when collections run: a child process with --expose-gc
// calls gc() every 10 ms while 20 deadlines of 300 ms run, holding nothing but an abort listener
// on each signal (as a probe awaiting a socket does). Node's own AbortSignal.any + timeout is the
// control: if it fired under this harness, the harness would prove nothing.
describe("under gc()", () => {
  const script = `
    const { deadline } = await import(${JSON.stringify(resolve("dist/src/deadline.js"))});
    const stop = new AbortController();
    const fired = { ours: 0, node: 0 };
    const t0 = Date.now();
    let latest = 0;
    for (let i = 0; i < 20; i++) {
      deadline(300, stop.signal).signal.addEventListener("abort", () => { fired.ours++; latest = Date.now() - t0; });
      AbortSignal.any([stop.signal, AbortSignal.timeout(300)]).addEventListener("abort", () => fired.node++);
    }
    const gc = setInterval(() => globalThis.gc(), 10);
    setTimeout(() => { clearInterval(gc); console.log(JSON.stringify({ ...fired, latest })); }, 1500);
  `;

  it("fires every deadline on time while Node's AbortSignal.timeout in AbortSignal.any is collected", async () => {
    const { stdout } = await run(process.execPath, ["--expose-gc", "--input-type=module", "-e", script], { timeout: 20_000 });
    const out = JSON.parse(stdout) as { ours: number; node: number; latest: number };
    expect(out.ours).toBe(20);
    expect(out.latest).toBeLessThan(1300);
    expect(out.node).toBe(0);
  });
});
