/**
 * Sign and clipping behaviour on both sides of the clip range, for positive and negative
 * advantages, for every unit kind; the dual clip; the logS cap.
 */
import { describe, expect, it } from "vitest";
import { type PolicyLossConfig, policyLoss, type UnitKind } from "../src/index.js";

// One unit with the given ratio r: for sequence / subsequence the unit has two tokens with
// log-ratios 0.5·ln r ± 0.1 (mean ln r); for token units it is a single token.
const unit = (units: UnitKind, r: number, advantage: number, config: PolicyLossConfig = {}) => {
  const lr = Math.log(r);
  const logRatios = units === "token" ? [lr] : [lr - 0.1, lr + 0.1];
  const logpOld = logRatios.map((_, t) => -1 - t);
  const logpNew = logpOld.map((o, t) => o + logRatios[t]!);
  return policyLoss([{ logpNew, logpOld, mask: logRatios.map(() => 1), advantage }], {
    variant: "grpo",
    units,
    clipLow: 0.2,
    clipHigh: 0.3,
    aggregation: "seq-mean-token-sum",
    ...config,
  });
};

describe.each(["token", "sequence", "subsequence"] as const)("%s units, clip range [0.8, 1.3]", (units) => {
  const n = units === "token" ? 1 : 2;

  it("A > 0, ratio above 1 + εhigh: clipped, coefficient 0, loss −A(1 + εhigh)", () => {
    const r = unit(units, 1.6, 2);
    expect(r.loss).toBeCloseTo(n * -2 * 1.3, 12);
    expect(Array.from(r.coefficients[0]!)).toEqual(new Array(n).fill(0));
    expect(r.metrics.clipFraction).toBe(1);
    expect(r.metrics.unitClipFraction).toBe(1);
  });

  it("A > 0, ratio below 1 − εlow: not clipped, coefficient −A·r", () => {
    const r = unit(units, 0.5, 2);
    expect(r.loss).toBeCloseTo(n * -2 * 0.5, 12);
    for (const c of r.coefficients[0]!) expect(c).toBeCloseTo(-2 * 0.5, 12);
    expect(r.metrics.clipFraction).toBe(0);
  });

  it("A < 0, ratio below 1 − εlow: clipped, coefficient 0, loss −A(1 − εlow)", () => {
    const r = unit(units, 0.5, -2);
    expect(r.loss).toBeCloseTo(n * 2 * 0.8, 12);
    expect(Array.from(r.coefficients[0]!)).toEqual(new Array(n).fill(0));
    expect(r.metrics.clipFraction).toBe(1);
  });

  it("A < 0, ratio above 1 + εhigh (dual clip not binding): not clipped, coefficient −A·r", () => {
    const r = unit(units, 1.6, -2, { dualClip: 3 });
    expect(r.loss).toBeCloseTo(n * 2 * 1.6, 12);
    for (const c of r.coefficients[0]!) expect(c).toBeCloseTo(2 * 1.6, 12);
    expect(r.metrics.clipFraction).toBe(0);
  });

  it("A < 0 and a huge ratio: the dual clip binds, loss −A·c, coefficient 0", () => {
    const r = unit(units, 20, -2, { dualClip: 3 });
    expect(r.loss).toBeCloseTo(n * 2 * 3, 12);
    expect(Array.from(r.coefficients[0]!)).toEqual(new Array(n).fill(0));
    expect(r.metrics.clipFraction).toBe(1);
    // without the dual clip the same unit is unclipped
    const off = unit(units, 20, -2, { dualClip: null });
    expect(off.loss).toBeCloseTo(n * 2 * 20, 9);
    for (const c of off.coefficients[0]!) expect(c).toBeCloseTo(2 * 20, 9);
  });

  it("the dual clip never applies to A > 0", () => {
    const r = unit(units, 20, 2, { dualClip: 3 });
    expect(r.loss).toBeCloseTo(n * -2 * 1.3, 12); // ordinary upper clip
  });

  it("inside the range: unclipped for both signs", () => {
    for (const a of [1.5, -1.5]) {
      const r = unit(units, 1.1, a);
      expect(r.loss).toBeCloseTo(n * -a * 1.1, 12);
      for (const c of r.coefficients[0]!) expect(c).toBeCloseTo(-a * 1.1, 12);
    }
  });

  it("A = 0: loss 0 and coefficients +0", () => {
    const r = unit(units, 1.1, 0);
    expect(r.loss).toBe(0);
    for (const c of r.coefficients[0]!) expect(Object.is(c, 0)).toBe(true);
  });
});

describe("logS cap at 10", () => {
  it("caps the ratio at e^10 and treats it as constant (coefficient 0, not counted as clipped)", () => {
    // one token, log-ratio 12 > 10, A = −1, no dual clip: ℓ = e^10, g = 0
    const r = policyLoss([{ logpNew: [2], logpOld: [-10], mask: [1], advantage: -1 }], {
      variant: "grpo",
      dualClip: null,
    });
    expect(r.loss).toBeCloseTo(Math.exp(10), 6);
    expect(r.coefficients[0]![0]).toBe(0);
    expect(r.metrics.ratioMax).toBeCloseTo(Math.exp(10), 6);
    expect(r.metrics.clipFraction).toBe(0);
    // just below the cap the gradient is back
    const below = policyLoss([{ logpNew: [-0.5], logpOld: [-10], mask: [1], advantage: -1 }], {
      variant: "grpo",
      dualClip: null,
    });
    expect(below.coefficients[0]![0]).toBeCloseTo(Math.exp(9.5), 6);
  });
});
