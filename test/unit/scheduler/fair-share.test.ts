import { describe, expect, test } from "vitest";
import { apportion, FairShare } from "../../../src/fair-share.js";

const never = new AbortController().signal;

/** A run that holds its slot until released by the test. */
function held(): { work: () => Promise<void>; release: () => void; started: boolean } {
  const h = { started: false, release: () => undefined as void, work: async () => undefined as void };
  h.work = () => {
    h.started = true;
    return new Promise<void>((resolve) => (h.release = resolve));
  };
  return h;
}

describe("apportion", () => {
  test("splits the places by demand, by largest remainder, adding up to the size", () => {
    expect(
      apportion(
        8,
        new Map([
          ["a", 398],
          ["stuck", 2],
        ]),
      ),
    ).toEqual(
      new Map([
        ["a", 7],
        ["stuck", 1],
      ]),
    );
    expect(
      apportion(
        8,
        new Map([
          ["a", 1],
          ["b", 1],
          ["c", 1],
        ]),
      ),
    ).toEqual(
      new Map([
        ["a", 3],
        ["b", 3],
        ["c", 2],
      ]),
    );
    expect(
      apportion(
        32,
        new Map([
          ["ht", 1000],
          ["tok", 1000],
        ]),
      ),
    ).toEqual(
      new Map([
        ["ht", 16],
        ["tok", 16],
      ]),
    );
  });

  test("gives one group alone every place, and every group at least one", () => {
    expect(apportion(8, new Map([["only", 5]]))).toEqual(new Map([["only", 8]]));
    expect(
      apportion(
        2,
        new Map([
          ["a", 1],
          ["b", 1],
          ["c", 1],
        ]),
      ),
    ).toEqual(
      new Map([
        ["a", 1],
        ["b", 1],
        ["c", 1],
      ]),
    );
  });
});

describe("FairShare", () => {
  test("a group at its share waits while another group's later run takes a free slot", async () => {
    const slots = new FairShare(4);
    slots.setDemand(
      new Map([
        ["stuck", 1],
        ["good", 1],
      ]),
    );
    const stuck = [held(), held(), held()];
    for (const h of stuck) void slots.run("stuck", never, h.work);
    const good = held();
    void slots.run("good", never, good.work);
    await Promise.resolve();
    expect(stuck.map((h) => h.started)).toEqual([true, true, false]);
    expect(good.started).toBe(true);
    expect(slots.runningOf("stuck")).toBe(2);
    expect(slots.waiting()).toBe(1);
  });

  test("takes the global slot and the group's place together: waiting never holds either", async () => {
    const slots = new FairShare(2);
    slots.setDemand(
      new Map([
        ["a", 1],
        ["b", 1],
      ]),
    );
    const a1 = held();
    const a2 = held();
    const b1 = held();
    void slots.run("a", never, a1.work);
    void slots.run("a", never, a2.work);
    void slots.run("b", never, b1.work);
    await Promise.resolve();
    // a2 waits for a's place without holding the second global slot, which b1 has.
    expect([a1.started, a2.started, b1.started]).toEqual([true, false, true]);
    a1.release();
    await new Promise((r) => setTimeout(r, 0));
    expect(a2.started).toBe(true);
  });

  test("starts waiting runs in the order they became due", async () => {
    const slots = new FairShare(1);
    const order: string[] = [];
    const first = held();
    void slots.run("x", never, first.work);
    const done = ["y", "z", "x"].map((g) => slots.run(g, never, async () => void order.push(g)));
    first.release();
    await Promise.all(done);
    expect(order).toEqual(["y", "z", "x"]);
  });

  test("a cancelled waiter leaves the queue without running and resolves false", async () => {
    const slots = new FairShare(1);
    const first = held();
    void slots.run("x", never, first.work);
    const cancel = new AbortController();
    let ran = false;
    const waiting = slots.run("x", cancel.signal, async () => void (ran = true));
    cancel.abort();
    expect(await waiting).toBe(false);
    expect(slots.waiting()).toBe(0);
    first.release();
    await new Promise((r) => setTimeout(r, 0));
    expect(ran).toBe(false);
    expect(slots.runningOf("x")).toBe(0);
  });
});
