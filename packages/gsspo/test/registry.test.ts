import { afterEach, describe, expect, it } from "vitest";
import {
  basePolicyLossSettings,
  PolicyLossInputError,
  policyLoss,
  policyLossVariants,
  registerPolicyLoss,
  resolvePolicyLoss,
  unitsFromMask,
  unregisterPolicyLoss,
  variantDefaults,
} from "../src/index.js";

afterEach(() => {
  for (const name of policyLossVariants()) unregisterPolicyLoss(name);
});

describe("defaults table (SPEC.md)", () => {
  it.each([
    ["grpo", { units: "token", clipLow: 0.2, clipHigh: 0.2, dualClip: 3, aggregation: "token-mean" }],
    [
      "gspo",
      {
        units: "sequence",
        clipLow: 3e-4,
        clipHigh: 4e-4,
        dualClip: null,
        aggregation: "seq-mean-token-mean",
      },
    ],
    [
      "gsspo",
      {
        units: "subsequence",
        clipLow: 3e-4,
        clipHigh: 4e-4,
        dualClip: null,
        aggregation: "seq-mean-token-mean",
      },
    ],
  ])("%s", (name, expected) => {
    expect(variantDefaults(name)).toEqual({ ...expected, klCoef: 0, klEstimator: "k3" });
  });

  it("explicit config fields override the variant's defaults; gsspo is the default variant", () => {
    const r = resolvePolicyLoss({ variant: "gspo", clipHigh: 0.01, dualClip: 2, klCoef: 0.001 });
    expect(r).toMatchObject({
      variant: "gspo",
      units: "sequence",
      clipLow: 3e-4,
      clipHigh: 0.01,
      dualClip: 2,
    });
    expect(r.klCoef).toBe(0.001);
    expect(resolvePolicyLoss().variant).toBe("gsspo");
    // undefined fields do not override
    expect(resolvePolicyLoss({ variant: "grpo", dualClip: undefined }).dualClip).toBe(3);
  });
});

describe("registerPolicyLoss", () => {
  it("a variant with its own defaults and no custom segmentation", () => {
    registerPolicyLoss("dapo-like", { defaults: { clipHigh: 0.28, aggregation: "token-mean" } });
    expect(policyLossVariants()).toContain("dapo-like");
    expect(variantDefaults("dapo-like")).toEqual({ ...basePolicyLossSettings, clipHigh: 0.28 });
  });

  it("extends another variant", () => {
    registerPolicyLoss("gsspo-kl", { extends: "gsspo", defaults: { klCoef: 0.001, klEstimator: "k3" } });
    expect(variantDefaults("gsspo-kl")).toEqual({ ...variantDefaults("gsspo"), klCoef: 0.001 });
  });

  // Custom units: pairs of consecutive Think-Action cycles share one ratio.
  const pairs = (mask: ArrayLike<number>) =>
    unitsFromMask(mask, "subsequence").map((s) => (s < 0 ? -1 : s >> 1));

  it("a custom segmentation drives the units", () => {
    registerPolicyLoss("cycle-pairs", { extends: "gsspo", segment: pairs });
    // cycles 0 and 1 form unit 0, cycle 2 is unit 1. A = 1, clip 3e-4/4e-4.
    //   unit 0 log-ratios 1e-4, 1e-4, 1e-4 → s = e^1e-4 unclipped, g = −s
    //   unit 1 log-ratio 1e-3 → clipped, g = 0; w = 1/4 (seq-mean-token-mean, n = 4)
    const mask = [1, 0, 1, 1, 0, 1];
    const logpOld = [-1, -1, -1, -1, -1, -1];
    const logpNew = [-1 + 1e-4, 0, -1 + 1e-4, -1 + 1e-4, 0, -1 + 1e-3];
    const r = policyLoss([{ logpNew, logpOld, mask, advantage: 1 }], { variant: "cycle-pairs" });
    const s = Math.exp(1e-4);
    const c = r.coefficients[0]!;
    for (const [t, want] of [-s / 4, 0, -s / 4, -s / 4, 0, 0].entries()) expect(c[t]).toBeCloseTo(want, 12);
    expect(r.metrics.units).toBe(2);
    expect(r.loss).toBeCloseTo((3 * -s + -1.0004) / 4, 12);
    // an explicit `units` replaces the custom segmentation
    const sub = policyLoss([{ logpNew, logpOld, mask, advantage: 1 }], {
      variant: "cycle-pairs",
      units: "subsequence",
    });
    expect(sub.metrics.units).toBe(3);
    // and a variant that extends it inherits the segmentation
    registerPolicyLoss("cycle-pairs-wide", { extends: "cycle-pairs", defaults: { clipHigh: 0.01 } });
    expect(
      policyLoss([{ logpNew, logpOld, mask, advantage: 1 }], { variant: "cycle-pairs-wide" }).metrics.units,
    ).toBe(2);
  });

  it("a custom segmentation equal to unitsFromMask(subsequence) reproduces gsspo", () => {
    registerPolicyLoss("same-as-gsspo", {
      extends: "gsspo",
      segment: (m) => unitsFromMask(m, "subsequence"),
    });
    const batch = [
      {
        logpNew: [-1, 0, -0.9998, -1.0001, 0, -0.9999],
        logpOld: [-1, -1, -1, -1, -1, -1],
        mask: [1, 0, 1, 1, 0, 1],
        advantage: -0.7,
      },
      { logpNew: [-2, -2.0002], logpOld: [-2, -2], mask: [1, 1], advantage: 1.2 },
    ];
    const a = policyLoss(batch, { variant: "same-as-gsspo" });
    const b = policyLoss(batch, { variant: "gsspo" });
    expect(a.loss).toBe(b.loss);
    expect(a.coefficients).toEqual(b.coefficients);
    expect(a.metrics).toEqual(b.metrics);
  });

  it("rejects a segmentation that breaks the unit-id contract, naming trajectory and position", () => {
    registerPolicyLoss("bad-ids", { segment: (m) => Array.from(m, (v) => (v === 1 ? 99 : -1)) });
    registerPolicyLoss("bad-gap", { segment: (m) => Array.from(m, () => 0) });
    registerPolicyLoss("bad-length", { segment: () => [0] });
    const batch = [{ logpNew: [-1, -1], logpOld: [-1, -1], mask: [1, 0], advantage: 1 }];
    const catchIt = (variant: string) => {
      try {
        policyLoss([batch[0]!, ...batch], { variant });
      } catch (e) {
        return e;
      }
    };
    expect(catchIt("bad-ids")).toMatchObject({ field: "units", trajectory: 0, position: 0 });
    expect(catchIt("bad-gap")).toMatchObject({ field: "units", trajectory: 0, position: 1 });
    expect(catchIt("bad-length")).toMatchObject({ field: "units", trajectory: 0 });
  });

  it("rejects invalid definitions and leaves the registry unchanged", () => {
    expect(() => registerPolicyLoss("grpo", { defaults: {} })).toThrow(PolicyLossInputError);
    expect(() => registerPolicyLoss("broken", { defaults: { clipLow: 0 } })).toThrow(/clipLow/);
    expect(policyLossVariants()).not.toContain("broken");
    expect(() => registerPolicyLoss("orphan", { extends: "missing" })).toThrow(/missing/);
    expect(() => registerPolicyLoss("", {})).toThrow(PolicyLossInputError);
    // replacing a custom variant with an invalid one keeps the old definition
    registerPolicyLoss("mine", { defaults: { clipHigh: 0.3 } });
    expect(() => registerPolicyLoss("mine", { defaults: { dualClip: 0.5 } })).toThrow(/dualClip/);
    expect(variantDefaults("mine").clipHigh).toBe(0.3);
  });

  it("detects extends cycles", () => {
    registerPolicyLoss("a", {});
    registerPolicyLoss("b", { extends: "a" });
    expect(() => registerPolicyLoss("a", { extends: "b" })).toThrow(/extends itself/);
    expect(variantDefaults("b")).toEqual(basePolicyLossSettings);
  });

  it("built-ins cannot be unregistered", () => {
    expect(unregisterPolicyLoss("gsspo")).toBe(false);
    expect(policyLossVariants().slice(0, 3)).toEqual(["grpo", "gspo", "gsspo"]);
  });
});

describe("unitsFromMask", () => {
  const mask = new Uint8Array([0, 1, 1, 0, 1, 0, 0, 1, 1]);
  it("token / sequence / subsequence", () => {
    expect(Array.from(unitsFromMask(mask, "token"))).toEqual([-1, 0, 1, -1, 2, -1, -1, 3, 4]);
    expect(Array.from(unitsFromMask(mask, "sequence"))).toEqual([-1, 0, 0, -1, 0, -1, -1, 0, 0]);
    expect(Array.from(unitsFromMask(mask, "subsequence"))).toEqual([-1, 0, 0, -1, 1, -1, -1, 2, 2]);
  });
  it("rejects an unknown unit kind", () => {
    expect(() => unitsFromMask(mask, "turn" as never)).toThrow(PolicyLossInputError);
  });
});
