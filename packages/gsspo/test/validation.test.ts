import { describe, expect, it } from "vitest";
import {
  type PolicyLossConfig,
  PolicyLossInputError,
  type PolicyLossTrajectory,
  policyLoss,
} from "../src/index.js";

const good = (): PolicyLossTrajectory => ({
  logpNew: [-1, -1, -1],
  logpOld: [-1, -1, -1],
  logpRef: [-1, -1, -1],
  mask: [1, 0, 1],
  advantage: 1,
});

const thrown = (batch: unknown, config?: PolicyLossConfig) => {
  try {
    policyLoss(batch as PolicyLossTrajectory[], config);
  } catch (error) {
    expect(error).toBeInstanceOf(PolicyLossInputError);
    return error as PolicyLossInputError;
  }
  throw new Error("expected policyLoss to throw");
};

describe("input validation", () => {
  it("empty batch", () => {
    const e = thrown([]);
    expect(e).toMatchObject({ _tag: "PolicyLossInputError", field: "batch" });
    expect(e.trajectory).toBeUndefined();
  });

  it.each([
    ["logpNew", { logpNew: [-1, -1] }],
    ["logpOld", { logpOld: [-1, -1, -1, -1] }],
    ["logpRef", { logpRef: [-1] }],
  ] as const)("length mismatch of %s names trajectory and field", (field, patch) => {
    const e = thrown([good(), { ...good(), ...patch }]);
    expect(e).toMatchObject({ field, trajectory: 1 });
    expect(e.message).toMatch(/^trajectory 1: /);
    expect(e.message).toContain("length");
  });

  it.each([
    ["logpNew", Number.NaN],
    ["logpNew", Number.POSITIVE_INFINITY],
    ["logpOld", Number.NEGATIVE_INFINITY],
    ["logpOld", Number.NaN],
  ] as const)("%s = %s at a masked position names trajectory, field and position", (field, value) => {
    const bad = good();
    const arr = [-1, -1, -1];
    arr[2] = value;
    const e = thrown([good(), good(), { ...bad, [field]: arr }]);
    expect(e).toMatchObject({ field, trajectory: 2, position: 2 });
    expect(e.message).toContain(`${field}[2]`);
  });

  it("non-finite values at unmasked positions are fine", () => {
    const t = { ...good(), logpNew: [-1, Number.NaN, -1], logpOld: [-1, Number.POSITIVE_INFINITY, -1] };
    expect(policyLoss([t]).loss).toBeCloseTo(-1, 12);
  });

  it("logpRef is checked only when the KL term is on", () => {
    const t = { ...good(), logpRef: [-1, -1, Number.NaN] };
    expect(() => policyLoss([t])).not.toThrow();
    expect(thrown([t], { klCoef: 0.01 })).toMatchObject({ field: "logpRef", trajectory: 0, position: 2 });
    const { logpRef: _ref, ...noRef } = good();
    expect(thrown([good(), noRef], { klCoef: 0.01 })).toMatchObject({ field: "logpRef", trajectory: 1 });
  });

  it("advantage must be finite", () => {
    expect(thrown([{ ...good(), advantage: Number.NaN }])).toMatchObject({
      field: "advantage",
      trajectory: 0,
    });
    expect(thrown([{ ...good(), advantage: "1" as unknown as number }])).toMatchObject({
      field: "advantage",
    });
  });

  it("mask must be 0 or 1", () => {
    expect(thrown([{ ...good(), mask: [1, 2, 1] }])).toMatchObject({
      field: "mask",
      trajectory: 0,
      position: 1,
    });
    expect(thrown([{ ...good(), mask: undefined }])).toMatchObject({ field: "mask", trajectory: 0 });
  });

  it.each([
    [{ variant: "ppo-nope" }, "variant"],
    [{ clipLow: 0 }, "clipLow"],
    [{ clipLow: -0.1 }, "clipLow"],
    [{ clipHigh: Number.NaN }, "clipHigh"],
    [{ dualClip: 1 }, "dualClip"],
    [{ dualClip: 0.5 }, "dualClip"],
    [{ klCoef: -1 }, "klCoef"],
    [{ aggregation: "mean" as never }, "aggregation"],
    [{ units: "turn" as never }, "units"],
    [{ klEstimator: "k4" as never }, "klEstimator"],
  ] as const)("invalid setting %o → field %s", (config, field) => {
    const e = thrown([good()], config as PolicyLossConfig);
    expect(e.field).toBe(field);
    expect(e.trajectory).toBeUndefined();
  });

  it("unknown variant lists the registered ones", () => {
    expect(thrown([good()], { variant: "nope" }).message).toContain("grpo, gspo, gsspo");
  });
});

describe("edge cases", () => {
  it("trajectories without masked tokens get zero coefficients and do not count in B'", () => {
    // gsspo seq-mean-token-mean: only trajectory 0 counts, B' = 1, w = 1/2; A = 1, s = 1 ⇒ loss −1
    const r = policyLoss([good(), { ...good(), mask: [0, 0, 0] }]);
    expect(r.loss).toBeCloseTo(-1, 12);
    expect(Array.from(r.coefficients[1]!)).toEqual([0, 0, 0]);
    expect(r.metrics.units).toBe(2);
  });

  it("a batch without any masked token: loss 0, NaN ratio metrics", () => {
    const r = policyLoss([{ ...good(), mask: [0, 0, 0] }]);
    expect(r.loss).toBe(0);
    expect(r.metrics.tokens).toBe(0);
    expect(r.metrics.clipFraction).toBe(0);
    expect(r.metrics.ratioMean).toBeNaN();
  });

  it("accepts Float32Array, Float64Array and Uint8Array inputs, and returns fresh Float64Arrays", () => {
    const r = policyLoss([
      {
        logpNew: new Float32Array([-1, -1]),
        logpOld: new Float64Array([-1, -1]),
        mask: new Uint8Array([1, 1]),
        advantage: 2,
      },
    ]);
    expect(r.coefficients[0]).toBeInstanceOf(Float64Array);
    expect(Array.from(r.coefficients[0]!)).toEqual([-1, -1]); // w = 1/2, g = −2
    const again = policyLoss([{ logpNew: [-1], logpOld: [-1], mask: [1], advantage: 2 }]);
    expect(again.coefficients[0]!.buffer).not.toBe(r.coefficients[0]!.buffer);
  });
});
