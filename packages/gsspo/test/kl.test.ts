import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type KlEstimator, k3Clamp, klDerivative, klEstimate, policyLoss } from "../src/index.js";

describe("KL estimators", () => {
  it("values and derivatives at d = logpRef − logpNew = ln 2 (by hand)", () => {
    // k1: −d, 1 · k2: ½d², −d · k3: e^d − d − 1 = 1 − ln2, 1 − e^d = −1
    const ln2 = Math.log(2);
    expect(klEstimate("k1", 0, ln2)).toBeCloseTo(-ln2, 15);
    expect(klDerivative("k1", 0, ln2)).toBe(1);
    expect(klEstimate("k2", 0, ln2)).toBeCloseTo(0.5 * ln2 * ln2, 15);
    expect(klDerivative("k2", 0, ln2)).toBeCloseTo(-ln2, 15);
    expect(klEstimate("k3", 0, ln2)).toBeCloseTo(1 - ln2, 15);
    expect(klDerivative("k3", 0, ln2)).toBeCloseTo(-1, 15);
    // identical policies: zero KL for k2 and k3
    expect(klEstimate("k3", -1.3, -1.3)).toBe(0);
    expect(klEstimate("k2", -1.3, -1.3)).toBe(0);
  });

  it("k3 is non-negative and clamped at 10 with derivative 0 beyond", () => {
    expect(klEstimate("k3", -20, 0)).toBe(k3Clamp);
    expect(klDerivative("k3", -20, 0)).toBe(0);
    expect(klEstimate("k3", 0, -30)).toBe(k3Clamp); // e^−30 + 30 − 1 > 10
    fc.assert(
      fc.property(fc.double({ min: -20, max: 20, noNaN: true }), (d) => {
        // exp(d) − d − 1 ≥ 0 exactly; in float64 it can round to −1e−16 for tiny d.
        expect(klEstimate("k3", 0, d)).toBeGreaterThanOrEqual(-1e-15);
      }),
    );
  });

  it("derivatives match central finite differences of the estimates (away from the clamp)", () => {
    const h = 1e-6;
    fc.assert(
      fc.property(
        fc.constantFrom<KlEstimator>("k1", "k2", "k3"),
        fc.double({ min: -5, max: 0, noNaN: true }),
        fc.double({ min: -2, max: 2, noNaN: true }),
        (estimator, logpNew, d) => {
          const logpRef = logpNew + d;
          const fd =
            (klEstimate(estimator, logpNew + h, logpRef) - klEstimate(estimator, logpNew - h, logpRef)) /
            (2 * h);
          expect(Math.abs(klDerivative(estimator, logpNew, logpRef) - fd)).toBeLessThan(1e-6);
        },
      ),
    );
  });

  it("policyLoss uses the same estimators: with A = 0, loss = β·mean kl and c = β·kl'/N", () => {
    fc.assert(
      fc.property(
        fc.constantFrom<KlEstimator>("k1", "k2", "k3"),
        fc.array(
          fc.tuple(fc.double({ min: -5, max: 0, noNaN: true }), fc.double({ min: -3, max: 3, noNaN: true })),
          {
            minLength: 1,
            maxLength: 8,
          },
        ),
        (estimator, rows) => {
          const logpNew = rows.map((r) => r[0]);
          const logpRef = rows.map((r) => r[0] + r[1]);
          const n = rows.length;
          const result = policyLoss(
            [{ logpNew, logpOld: logpNew, logpRef, mask: rows.map(() => 1), advantage: 0 }],
            {
              variant: "grpo",
              klCoef: 0.3,
              klEstimator: estimator,
            },
          );
          const kls = rows.map((_, t) => klEstimate(estimator, logpNew[t]!, logpRef[t]!));
          expect(result.loss).toBeCloseTo((0.3 * kls.reduce((s, v) => s + v, 0)) / n, 12);
          expect(result.metrics.klMean).toBeCloseTo(kls.reduce((s, v) => s + v, 0) / n, 12);
          rows.forEach((_, t) => {
            expect(result.coefficients[0]![t]).toBeCloseTo(
              (0.3 * klDerivative(estimator, logpNew[t]!, logpRef[t]!)) / n,
              12,
            );
          });
        },
      ),
    );
  });
});
