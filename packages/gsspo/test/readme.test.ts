/** The README's example is this package's test/readme-example.ts, verbatim, and it runs. */
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it, vi } from "vitest";
import { groupAdvantages, policyLoss } from "../src/index.js";

const read = (name: string) => readFileSync(new URL(name, import.meta.url), "utf8");

afterEach(() => {
  vi.restoreAllMocks();
});

describe("README example", () => {
  it("is identical to test/readme-example.ts", () => {
    const block = /```ts\n([\s\S]*?)```/.exec(read("../README.md"));
    expect(block, "README.md has a ```ts block").not.toBeNull();
    expect(block![1]!.trim()).toBe(read("./readme-example.ts").trim());
  });

  it("runs and prints the loss, the coefficients and the unit clip fraction", async () => {
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    await import("./readme-example.js");
    expect(log).toHaveBeenCalledTimes(1);
    const [loss, coefficients, unitClipFraction] = log.mock.calls[0]!;
    // By hand: mean 0.5, std √0.5 ⇒ advantages ±0.5/(√0.5 + 1e-6). Cycle 0: logS = 0.5e-4, inside [1 − 3e-4, 1 + 4e-4] for
    // both. Cycle 1: logS = −5e-4, s < 1 − 3e-4: clipped for A < 0 only ⇒ unitClipFraction = 1/4.
    const a = 0.5 / (Math.sqrt(0.5) + 1e-6);
    expect(Array.from(groupAdvantages([1, 0], ["t", "t"]))).toEqual([a, -a]);
    const expected = policyLoss(
      [a, -a].map((advantage) => ({
        logpNew: [0, -1.1999, -0.4, 0, -2.0005],
        logpOld: [0, -1.2, -0.4, 0, -2.0],
        mask: [0, 1, 1, 0, 1],
        advantage,
      })),
    );
    expect(loss).toBe(expected.loss);
    expect(Array.from(coefficients as Float64Array)).toEqual(Array.from(expected.coefficients[0]!));
    expect(unitClipFraction).toBe(expected.metrics.unitClipFraction);
    expect(unitClipFraction).toBe(1 / 4);
    // trajectory 0 (A > 0), w = 1/(2·3): cycle 0 g = −a·e^{0.5e-4}; cycle 1 (below the range, A > 0)
    // is not clipped: g = −a·e^{−5e-4}
    const c = coefficients as Float64Array;
    expect(c[1]).toBeCloseTo((-a * Math.exp(0.5e-4)) / 6, 10);
    expect(c[4]).toBeCloseTo((-a * Math.exp(-5e-4)) / 6, 10);
    expect(c[0]).toBe(0);
  });
});
