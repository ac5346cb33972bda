/**
 * Small batches worked out by hand for each built-in variant. Ratios are chosen as ln of round
 * numbers so the arithmetic in the comments can be followed on paper; the expected values below are
 * those hand formulas, not outputs of the implementation.
 */
import { describe, expect, it } from "vitest";
import { policyLoss } from "../src/index.js";

const ln = Math.log;
/** logpNew from logpOld and the wanted per-token log-ratios (NaN where mask is 0: never read). */
const shift = (logpOld: number[], logRatio: number[]) => logpOld.map((o, t) => o + logRatio[t]!);
const close = (actual: ArrayLike<number>, expected: number[], digits = 12) => {
  expect(actual.length).toBe(expected.length);
  for (let t = 0; t < expected.length; t++) expect(actual[t]).toBeCloseTo(expected[t]!, digits);
};

describe("grpo (token units, ε 0.2/0.2, dual clip 3, token-mean)", () => {
  // Trajectory 0, A = +1, mask [1,1,0,1], ratios 1.1, 0.7, –, 1.5:
  //   r=1.1 inside [0.8, 1.2]          ℓ = −1.1, g = −1.1
  //   r=0.7 below 0.8, A>0: max(−0.7, −0.8) = −0.7, unclipped, g = −0.7
  //   r=1.5 above 1.2, A>0: max(−1.5, −1.2) = −1.2, clipped, g = 0
  // Trajectory 1, A = −2, mask [1,1,1], ratios 1.3, 0.5, 5:
  //   r=1.3: max(2.6, 2.4) = 2.6, unclipped; dual min(2.6, 6) = 2.6, g = 2.6
  //   r=0.5: max(1.0, 1.6) = 1.6, clipped, g = 0
  //   r=5:   max(10, 2.4) = 10, dual min(10, 6) = 6 binds, clipped, g = 0
  // N = 6: loss = (−1.1 − 0.7 − 1.2 + 2.6 + 1.6 + 6) / 6 = 7.2 / 6 = 1.2
  const old0 = [-1, -2, -9, -0.5];
  const old1 = [-0.3, -1.7, -4];
  const batch = [
    {
      logpOld: old0,
      logpNew: shift(old0, [ln(1.1), ln(0.7), Number.NaN, ln(1.5)]),
      mask: [1, 1, 0, 1],
      advantage: 1,
    },
    { logpOld: old1, logpNew: shift(old1, [ln(1.3), ln(0.5), ln(5)]), mask: [1, 1, 1], advantage: -2 },
  ];
  const result = policyLoss(batch, { variant: "grpo" });

  it("loss and coefficients", () => {
    expect(result.loss).toBeCloseTo(1.2, 12);
    close(result.coefficients[0]!, [-1.1 / 6, -0.7 / 6, 0, 0]);
    close(result.coefficients[1]!, [2.6 / 6, 0, 0]);
    expect(result.coefficients[0]![2]).toBe(0);
  });

  it("metrics", () => {
    const m = result.metrics;
    expect(m.tokens).toBe(6);
    expect(m.units).toBe(6);
    expect(m.clipFraction).toBeCloseTo(3 / 6, 12); // r = 1.5 (A>0), 0.5 and 5 (A<0)
    expect(m.unitClipFraction).toBeCloseTo(3 / 6, 12);
    // Π r = 1.1·0.7·1.5·1.3·0.5·5 = 3.75375; approxKl = mean(−ln r) = −ln(3.75375)/6
    expect(m.approxKl).toBeCloseTo(-ln(3.75375) / 6, 12);
    expect(m.ratioMean).toBeCloseTo(10.1 / 6, 12);
    expect(m.ratioMin).toBeCloseTo(0.5, 12);
    expect(m.ratioMax).toBeCloseTo(5, 12);
    expect(m.klMean).toBeUndefined();
  });

  it("dualClip: null removes the dual clip: r=5 with A=−2 then contributes 10", () => {
    // loss = (−3.0 + 2.6 + 1.6 + 10) / 6 = 11.2 / 6; r=5 is now unclipped, g = 10
    const off = policyLoss(batch, { variant: "grpo", dualClip: null });
    expect(off.loss).toBeCloseTo(11.2 / 6, 12);
    close(off.coefficients[1]!, [2.6 / 6, 0, 10 / 6]);
    expect(off.metrics.clipFraction).toBeCloseTo(2 / 6, 12);
  });
});

describe("gspo (one unit per trajectory, ε 3e-4/4e-4, seq-mean-token-mean)", () => {
  // Trajectory 0, A = 0.5, mask [0,1,1,0,1,1], log-ratios 2e-4, 0, −1e-4, 3e-4:
  //   logS = 4e-4/4 = 1e-4, s = e^1e-4 ∈ [0.9997, 1.0004] → unclipped, ℓ = −0.5·s, g = −0.5·s
  // Trajectory 1, A = 1.5, mask [1,1,0,1], log-ratios 1e-3, 5e-4, 0:
  //   logS = 1.5e-3/3 = 5e-4, s = e^5e-4 ≈ 1.0005001 > 1.0004, A>0 → clipped, ℓ = −1.5·1.0004
  // Trajectory 2, A = −1, mask [1,1], log-ratios −2e-3, −4e-3:
  //   logS = −3e-3, s ≈ 0.9970045 < 0.9997, A<0 → clipped, ℓ = 0.9997
  // B' = 3, weights 1/(3·4), 1/(3·3), 1/(3·2): loss = (−0.5·e^1e-4 − 1.5·1.0004 + 0.9997) / 3
  const o0 = [-3, -1, -2, -7, -0.25, -0.5];
  const o1 = [-1, -1, -1, -1];
  const o2 = [-2, -0.1];
  const batch = [
    {
      logpOld: o0,
      logpNew: shift(o0, [9, 2e-4, 0, 9, -1e-4, 3e-4]),
      mask: [0, 1, 1, 0, 1, 1],
      advantage: 0.5,
    },
    { logpOld: o1, logpNew: shift(o1, [1e-3, 5e-4, 9, 0]), mask: [1, 1, 0, 1], advantage: 1.5 },
    { logpOld: o2, logpNew: shift(o2, [-2e-3, -4e-3]), mask: [1, 1], advantage: -1 },
  ];
  const result = policyLoss(batch, { variant: "gspo" });
  const s0 = Math.exp(1e-4);

  it("loss and coefficients", () => {
    expect(result.loss).toBeCloseTo((-0.5 * s0 - 1.5 * 1.0004 + 0.9997) / 3, 12);
    const c = (-0.5 * s0) / 12;
    close(result.coefficients[0]!, [0, c, c, 0, c, c]);
    close(result.coefficients[1]!, [0, 0, 0, 0]);
    close(result.coefficients[2]!, [0, 0]);
  });

  it("metrics", () => {
    const m = result.metrics;
    expect(m.units).toBe(3);
    expect(m.tokens).toBe(9);
    expect(m.clipFraction).toBeCloseTo(5 / 9, 12);
    expect(m.unitClipFraction).toBeCloseTo(2 / 3, 12);
    // Σ log-ratios = 4e-4 + 1.5e-3 − 6e-3 = −4.1e-3 over 9 tokens
    expect(m.approxKl).toBeCloseTo(4.1e-3 / 9, 14);
    expect(m.ratioMin).toBeCloseTo(Math.exp(-3e-3), 14);
    expect(m.ratioMax).toBeCloseTo(Math.exp(5e-4), 14);
    expect(m.ratioMean).toBeCloseTo((s0 + Math.exp(5e-4) + Math.exp(-3e-3)) / 3, 14);
  });
});

describe("gsspo (one unit per maximal mask-1 run, ε 3e-4/4e-4, seq-mean-token-mean)", () => {
  // Trajectory 0, A = 1, mask [0,1,1,0,0,1,1,1]: two Think-Action cycles
  //   cycle 0 log-ratios 1e-4, 1e-4       → logS = 1e-4, s = e^1e-4 unclipped, g = −e^1e-4
  //   cycle 1 log-ratios 1e-3, 0, 5e-4    → logS = 5e-4, s ≈ 1.0005 > 1.0004 → clipped, ℓ = −1.0004
  // Trajectory 1, A = −1, mask [1,1,1], log-ratios −1e-4, −2e-4, 0
  //   logS = −1e-4, s = e^−1e-4 ≈ 0.9999 ≥ 0.9997 → unclipped, ℓ = s, g = +s
  // B' = 2, n = 5 and 3: loss = (1/10)(2·(−e^1e-4) + 3·(−1.0004)) + (1/6)·3·e^−1e-4
  const o0 = [-1, -1, -1, -1, -1, -2, -2, -2];
  const o1 = [-0.5, -0.5, -0.5];
  const batch = [
    {
      logpOld: o0,
      logpNew: shift(o0, [5, 1e-4, 1e-4, 5, 5, 1e-3, 0, 5e-4]),
      mask: new Uint8Array([0, 1, 1, 0, 0, 1, 1, 1]),
      advantage: 1,
    },
    { logpOld: o1, logpNew: shift(o1, [-1e-4, -2e-4, 0]), mask: new Uint8Array([1, 1, 1]), advantage: -1 },
  ];
  const a = Math.exp(1e-4);
  const b = Math.exp(-1e-4);

  it("loss, coefficients and metrics", () => {
    const result = policyLoss(batch); // gsspo is the default variant
    expect(result.loss).toBeCloseTo((2 * -a + 3 * -1.0004) / 10 + (3 * b) / 6, 12);
    close(result.coefficients[0]!, [0, -a / 10, -a / 10, 0, 0, 0, 0, 0]);
    close(result.coefficients[1]!, [b / 6, b / 6, b / 6]);
    expect(result.metrics.units).toBe(3);
    expect(result.metrics.clipFraction).toBeCloseTo(3 / 8, 12);
    expect(result.metrics.unitClipFraction).toBeCloseTo(1 / 3, 12);
  });

  it("differs from gspo, which averages both cycles into one unclipped ratio", () => {
    // gspo: trajectory 0 is one unit, logS = (2e-4 + 1.5e-3)/5 = 3.4e-4 → s ∈ range, unclipped
    const result = policyLoss(batch, { variant: "gspo" });
    const s = Math.exp(3.4e-4);
    close(result.coefficients[0]!, [0, -s / 10, -s / 10, 0, 0, -s / 10, -s / 10, -s / 10]);
    expect(result.loss).toBeCloseTo((5 * -s) / 10 + (3 * b) / 6, 12);
    expect(result.metrics.clipFraction).toBe(0);
  });

  it("seq-mean-token-sum and token-mean weigh tokens by 1/B' and 1/N", () => {
    // token-sum: w = 1/2 → c = −a/2 on cycle 0, b/2 on trajectory 1
    const sum = policyLoss(batch, { aggregation: "seq-mean-token-sum" });
    close(sum.coefficients[0]!, [0, -a / 2, -a / 2, 0, 0, 0, 0, 0]);
    expect(sum.loss).toBeCloseTo((2 * -a + 3 * -1.0004 + 3 * b) / 2, 12);
    // token-mean: w = 1/8
    const mean = policyLoss(batch, { aggregation: "token-mean" });
    close(mean.coefficients[1]!, [b / 8, b / 8, b / 8]);
    expect(mean.loss).toBeCloseTo((2 * -a + 3 * -1.0004 + 3 * b) / 8, 12);
  });
});

describe("KL to a reference", () => {
  // One token, A = 0 (policy part 0), logpNew = −1, logpRef = −1 + ln 2 ⇒ d = ln 2, β = 0.5:
  //   k1: kl = −ln2,        kl' = 1      → loss = −0.5·ln2,        c = 0.5
  //   k2: kl = ½ ln²2,      kl' = −ln2   → loss = 0.25·ln²2,       c = −0.5·ln2
  //   k3: kl = 2 − ln2 − 1, kl' = 1 − 2  → loss = 0.5·(1 − ln2),   c = −0.5
  const one = (estimator: "k1" | "k2" | "k3") =>
    policyLoss([{ logpNew: [-1], logpOld: [-1], logpRef: [-1 + ln(2)], mask: [1], advantage: 0 }], {
      variant: "grpo",
      klCoef: 0.5,
      klEstimator: estimator,
    });
  it.each([
    ["k1", -0.5 * ln(2), 0.5, -ln(2)],
    ["k2", 0.25 * ln(2) ** 2, -0.5 * ln(2), 0.5 * ln(2) ** 2],
    ["k3", 0.5 * (1 - ln(2)), -0.5, 1 - ln(2)],
  ] as const)("%s", (estimator, loss, coefficient, klMean) => {
    const result = one(estimator);
    expect(result.loss).toBeCloseTo(loss, 14);
    expect(result.coefficients[0]![0]).toBeCloseTo(coefficient, 14);
    expect(result.metrics.klMean).toBeCloseTo(klMean, 14);
  });

  it("k3 is clamped at 10 with zero derivative", () => {
    // d = 5: e^5 − 5 − 1 ≈ 142.4 → 10; β = 0.1, A = 0 ⇒ loss = 1, c = 0
    const result = policyLoss([{ logpNew: [-6], logpOld: [-6], logpRef: [-1], mask: [1], advantage: 0 }], {
      klCoef: 0.1,
      klEstimator: "k3",
    });
    expect(result.loss).toBeCloseTo(1, 14);
    expect(result.coefficients[0]![0]).toBe(0);
  });

  it("adds β·w·kl' to the policy coefficient with the same aggregation", () => {
    // gsspo on two tokens of one cycle, A = 1, log-ratios 0 (s = 1 unclipped, g = −1), w = 1/2
    // k2 with d = 0.2 and −0.4, β = 0.1: c = (1/2)(−1) + 0.1·(1/2)·(−d)
    const result = policyLoss(
      [{ logpNew: [-1, -1], logpOld: [-1, -1], logpRef: [-0.8, -1.4], mask: [1, 1], advantage: 1 }],
      { klCoef: 0.1, klEstimator: "k2" },
    );
    close(result.coefficients[0]!, [-0.5 - 0.05 * 0.2, -0.5 + 0.05 * 0.4]);
    // loss = −1 + 0.1·(1/2)(½·0.04 + ½·0.16)
    expect(result.loss).toBeCloseTo(-1 + 0.05 * 0.1, 14);
  });
});
