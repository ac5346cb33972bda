import { mulberry32 } from "@workflow-r1/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { bootstrapMean, mean, passAtK, passKLadder, quantileSorted } from "../src/index.js";

/** Reference pass@k by exact binomial coefficients (small n only). */
const binomial = (n: number, k: number): number => {
  if (k < 0 || k > n) return 0;
  let r = 1;
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
  return r;
};

describe("passAtK (Chen et al. 2021, unbiased)", () => {
  it.each([
    // n, c, k, expected
    [10, 1, 1, 0.1],
    [10, 1, 10, 1],
    [5, 2, 2, 0.7], // 1 - C(3,2)/C(5,2) = 1 - 3/10
    [5, 0, 3, 0],
    [5, 5, 1, 1],
    [4, 2, 2, 5 / 6], // 1 - C(2,2)/C(4,2) = 1 - 1/6
    [20, 3, 5, 1 - binomial(17, 5) / binomial(20, 5)],
    [100, 37, 1, 0.37],
  ])("n=%i c=%i k=%i → %f", (n, c, k, expected) => {
    expect(passAtK(n, c, k)).toBeCloseTo(expected, 12);
  });

  it("equals 1 - C(n-c,k)/C(n,k) for all small n", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 30 }), fc.nat(), fc.nat(), (n, cr, kr) => {
        const c = cr % (n + 1);
        const k = 1 + (kr % n);
        const exact = 1 - binomial(n - c, k) / binomial(n, k);
        expect(passAtK(n, c, k)).toBeCloseTo(exact, 9);
      }),
    );
  });

  it("rejects impossible counts", () => {
    expect(() => passAtK(5, 6, 1)).toThrow(RangeError);
    expect(() => passAtK(5, 1, 6)).toThrow(/1 <= k <= n/);
    expect(() => passAtK(5, 1, 0)).toThrow(RangeError);
  });

  it("the ladder holds powers of two and k itself", () => {
    expect(passKLadder(1)).toEqual([1]);
    expect(passKLadder(5)).toEqual([1, 2, 4, 5]);
    expect(passKLadder(8)).toEqual([1, 2, 4, 8]);
  });
});

describe("bootstrapMean", () => {
  const coinFlips = (n: number, seed: number) => {
    const random = mulberry32(seed);
    return Array.from({ length: n }, () => (random() < 0.4 ? 1 : 0));
  };

  it.each([
    [[1, 1, 1, 1], 1, 1, 1],
    [[0, 0, 0], 0, 0, 0],
    [[0.5], 0.5, 0.5, 0.5],
  ])("constant data %j has a zero-width interval at the mean", (values, m, low, high) => {
    const e = bootstrapMean(values);
    expect(e).toEqual({ mean: m, low, high, n: values.length });
  });

  it("contains the mean for many random samples", () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -5, max: 5, noNaN: true }), { minLength: 1, maxLength: 60 }),
        (values) => {
          const e = bootstrapMean(values, { resamples: 200 });
          expect(e.mean).toBeCloseTo(mean(values), 12);
          expect(e.low).toBeLessThanOrEqual(e.mean);
          expect(e.high).toBeGreaterThanOrEqual(e.mean);
        },
      ),
      { numRuns: 50 },
    );
  });

  it("narrows as n grows (about 1/sqrt(n))", () => {
    const widths = [25, 100, 400, 1600].map((n) => {
      const e = bootstrapMean(coinFlips(n, 7), { seed: 3 });
      return e.high - e.low;
    });
    for (let i = 1; i < widths.length; i++) expect(widths[i]!).toBeLessThan(widths[i - 1]!);
    // Quadrupling n halves the width of a mean's interval, up to resampling noise.
    expect(widths[3]! / widths[1]!).toBeGreaterThan(0.15);
    expect(widths[3]! / widths[1]!).toBeLessThan(0.4);
  });

  it("matches the normal approximation on a large 0/1 sample", () => {
    const values = coinFlips(2000, 11);
    const e = bootstrapMean(values, { resamples: 2000 });
    const p = e.mean;
    const halfWidth = 1.96 * Math.sqrt((p * (1 - p)) / values.length);
    expect((e.high - e.low) / 2).toBeGreaterThan(0.85 * halfWidth);
    expect((e.high - e.low) / 2).toBeLessThan(1.15 * halfWidth);
  });

  it("is reproducible for a seed and changes with it", () => {
    const random = mulberry32(1);
    // Continuous scores (like F1), so interval ends are not stuck on a lattice of k/n.
    const values = Array.from({ length: 50 }, () => random());
    expect(bootstrapMean(values, { seed: 5 })).toEqual(bootstrapMean(values, { seed: 5 }));
    const a = bootstrapMean(values, { seed: 5 });
    const b = bootstrapMean(values, { seed: 6 });
    expect([a.low, a.high]).not.toEqual([b.low, b.high]);
  });

  it("is wider at 99% than at 80%", () => {
    const values = coinFlips(100, 2);
    const wide = bootstrapMean(values, { confidence: 0.99 });
    const narrow = bootstrapMean(values, { confidence: 0.8 });
    expect(wide.high - wide.low).toBeGreaterThan(narrow.high - narrow.low);
  });

  it("returns NaN for no data and rejects bad options", () => {
    expect(Number.isNaN(bootstrapMean([]).mean)).toBe(true);
    expect(() => bootstrapMean([1], { confidence: 1 })).toThrow(RangeError);
    expect(() => bootstrapMean([1], { resamples: 0 })).toThrow(RangeError);
  });
});

describe("helpers", () => {
  it("quantileSorted interpolates like numpy", () => {
    expect(quantileSorted([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantileSorted([1, 2, 3, 4], 0)).toBe(1);
    expect(quantileSorted([1, 2, 3, 4], 1)).toBe(4);
    expect(quantileSorted([10, 20], 0.25)).toBe(12.5);
  });
});
