import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { bootstrapMean, mean, passAtK, passKLadder } from "../src/index.js";

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

describe("re-exports", () => {
  it("eval reports with core's mean and bootstrap", () => {
    expect(mean([1, 0, 1, 0])).toBe(0.5);
    expect(bootstrapMean([1, 1]).low).toBe(1);
  });
});
