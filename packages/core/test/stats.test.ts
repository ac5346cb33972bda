import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { bootstrapMean, mean, mulberry32, quantileSorted, sampleStd } from "../src/index.js";

describe("mean and sampleStd", () => {
  it("mean is NaN (or the given value) for no values", () => {
    expect(mean([1, 2, 3, 6])).toBe(3);
    expect(Number.isNaN(mean([]))).toBe(true);
    expect(mean([], 0)).toBe(0);
  });

  it("sampleStd divides by n - 1 and is 0 below two values", () => {
    expect(sampleStd([2, 4, 4, 4, 5, 5, 7, 9])).toBeCloseTo(Math.sqrt(32 / 7), 12);
    expect(sampleStd([3])).toBe(0);
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
