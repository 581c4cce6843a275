// Ages a process: run with NODE_OPTIONS="--expose-gc --require <this file>". Collections every
// ~150 ms (CI_PROBER_AGED_GC_MS) make a weakly held object (AbortSignal.timeout() inside
// AbortSignal.any() on Node 20) go within a second, as weeks of running would.
//
// With CI_PROBER_SAMPLE_FILE set, it also appends one JSON line every CI_PROBER_SAMPLE_MS
// (default 1000): heap used right after a full GC, RSS, open fds and the active resources
// (timers, sockets, child processes…) by kind. `npm run soak` reads them.
"use strict";
const { appendFileSync, readdirSync } = require("node:fs");

if (typeof globalThis.gc !== "function") throw new Error("aged-preload.cjs needs --expose-gc");
const gc = globalThis.gc;
const every = Number(process.env.CI_PROBER_AGED_GC_MS ?? 150);
setInterval(() => gc(), every).unref();

const file = process.env.CI_PROBER_SAMPLE_FILE;
if (file) {
  const sampleMs = Number(process.env.CI_PROBER_SAMPLE_MS ?? 1000);
  setInterval(() => {
    gc();
    const resources = {};
    for (const kind of process.getActiveResourcesInfo()) resources[kind] = (resources[kind] ?? 0) + 1;
    const sample = {
      t: Date.now(),
      heapAfterGc: process.memoryUsage().heapUsed,
      rss: process.memoryUsage.rss(),
      fds: readdirSync("/proc/self/fd").length,
      resources,
    };
    appendFileSync(file, `${JSON.stringify(sample)}\n`);
  }, sampleMs).unref();
}
