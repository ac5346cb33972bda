/**
 * A variant may bring its own per-unit objective. The built-in clipped surrogate as a function
 * reproduces the inline loss bit for bit; a smooth custom surrogate, registered and used end to end
 * through the Algorithm service on rollout-built trajectories, yields coefficients that are the
 * gradient of its loss (central finite differences).
 */
import { Random } from "@workflow-r1/core";
import { Cause, Effect, Exit } from "effect";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import {
  clippedSurrogate,
  makeAlgorithm,
  type PolicyLossTrajectory,
  policyLoss,
  policyLossVariants,
  registerPolicyLoss,
  resolvePolicyLoss,
  type Surrogate,
  unregisterPolicyLoss,
  variantDefaults,
} from "../src/index.js";
import { fakeLearner, randomRollout } from "./fixtures/trajectories.js";

afterEach(() => {
  for (const name of policyLossVariants()) unregisterPolicyLoss(name);
});

/**
 * A soft clip: ℓ = −A·f(s), f(s) = 1 + (4/τ)(σ(τ(s − 1)) − ½) with τ = 1/εhigh. f(1) = 1 and
 * f'(1) = 1, so near s = 1 it is the plain surrogate; the gate f' = 4σ(1 − σ) fades it out smoothly
 * where the hard clip would cut.
 */
const softClip: Surrogate = (unit, settings) => {
  const tau = 1 / settings.clipHigh;
  const sigma = 1 / (1 + Math.exp(-tau * (unit.ratio - 1)));
  const gate = 4 * sigma * (1 - sigma);
  return {
    value: -unit.advantage * (1 + (4 / tau) * (sigma - 0.5)),
    slope: -unit.advantage * unit.ratio * gate,
    clipped: gate < 0.5,
  };
};

describe("custom surrogates", () => {
  it("clippedSurrogate as a variant's surrogate equals the built-in loss bit for bit (property)", () => {
    registerPolicyLoss("grpo-fn", { extends: "grpo", surrogate: clippedSurrogate });
    registerPolicyLoss("gsspo-fn", { extends: "gsspo", surrogate: clippedSurrogate });
    const trajectoryArb = fc.array(fc.constantFrom(0, 1, 1), { minLength: 1, maxLength: 12 }).chain((mask) =>
      fc.record({
        mask: fc.constant(mask),
        noise: fc.array(fc.double({ min: -0.4, max: 0.4, noNaN: true }), {
          minLength: mask.length,
          maxLength: mask.length,
        }),
        advantage: fc.double({ min: -2, max: 2, noNaN: true }),
      }),
    );
    fc.assert(
      fc.property(
        fc.array(trajectoryArb, { minLength: 1, maxLength: 4 }),
        fc.constantFrom("grpo", "gsspo"),
        fc.constantFrom(null, 1.5),
        (items, base, dualClip) => {
          const batch: PolicyLossTrajectory[] = items.map(({ mask, noise, advantage }) => ({
            mask,
            logpOld: mask.map(() => -1),
            logpNew: noise.map((d) => -1 + d),
            advantage,
          }));
          const builtIn = policyLoss(batch, { variant: base, dualClip });
          const viaFunction = policyLoss(batch, { variant: `${base}-fn`, dualClip });
          expect(viaFunction).toEqual(builtIn);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("is inherited through extends, kept out of variantDefaults, and must be a function", () => {
    registerPolicyLoss("soft", { extends: "gsspo", surrogate: softClip });
    registerPolicyLoss("soft-wide", { extends: "soft", defaults: { clipHigh: 1e-3 } });
    expect(resolvePolicyLoss({ variant: "soft-wide" }).surrogate).toBe(softClip);
    expect(resolvePolicyLoss({ variant: "gsspo" }).surrogate).toBeUndefined();
    expect(variantDefaults("soft-wide")).not.toHaveProperty("surrogate");
    expect(() => registerPolicyLoss("bad", { surrogate: 3 as never })).toThrow(
      /surrogate must be a function/,
    );
  });

  it("registered, used end to end through the Algorithm service: coefficients = dLoss/dlogpNew", () => {
    registerPolicyLoss("soft-gsspo", { extends: "gsspo", surrogate: softClip });
    const algorithm = makeAlgorithm({ name: "soft-gsspo", miniBatches: 1 });
    const random = new Random(11);
    const next = () => random.next();
    const h = 1e-8;
    let checked = 0;
    let gated = 0;
    for (let round = 0; round < 4; round++) {
      const rollout = randomRollout(next, 2, 4);
      const batch = Effect.runSync(algorithm.prepare(rollout, random));
      const learner = fakeLearner();
      const logpOld = learner.logprobs(batch.sequences);
      const session = Effect.runSync(algorithm.begin(batch, logpOld));
      const members = batch.plan[0]!;
      // ratios from well inside to well outside the clip range (εhigh = 4e-4)
      const spread = [1e-4, 5e-4, 2e-3, 1e-2][round]!;
      const logpNew = members.map((i) =>
        Float64Array.from(logpOld[i]!, (v) => v + spread * (2 * next() - 1)),
      );
      const { coefficients, result } = Effect.runSync(session.step(0, logpNew));
      if (result.metrics.unitClipFraction > 0) gated++;
      const items = (current: ReadonlyArray<ArrayLike<number>>) =>
        members.map((i, k) => {
          const t = batch.trajectories[i]!;
          return {
            logpNew: current[k]!,
            logpOld: logpOld[i]!,
            mask: t.mask,
            segments: t.segments,
            advantage: batch.advantages[i]!,
          };
        });
      const lossAt = (k: number, p: number, delta: number) => {
        const moved = logpNew.map((a, j) =>
          j === k ? Float64Array.from(a, (v, q) => (q === p ? v + delta : v)) : a,
        );
        return Effect.runSync(algorithm.loss(items(moved))).loss;
      };
      members.forEach((i, k) => {
        const mask = batch.trajectories[i]!.mask;
        for (let p = 0; p < mask.length; p += 3) {
          if (mask[p] !== 1) {
            expect(coefficients[k]![p]).toBe(0);
            continue;
          }
          const numeric = (lossAt(k, p, h) - lossAt(k, p, -h)) / (2 * h);
          expect(coefficients[k]![p]).toBeCloseTo(numeric, 6);
          checked++;
        }
      });
    }
    expect(checked).toBeGreaterThan(50);
    expect(gated).toBeGreaterThan(0);
  });

  it("a surrogate returning a non-finite value is a typed failure; one that throws stays a defect", () => {
    registerPolicyLoss("nan", { surrogate: () => ({ value: Number.NaN, slope: 0 }) });
    registerPolicyLoss("throws", {
      surrogate: () => {
        throw new Error("boom");
      },
    });
    const batch = [{ logpNew: [-1, -1], logpOld: [-1, -1], mask: [1, 1], advantage: 1 }];
    const nan = Effect.runSyncExit(makeAlgorithm({ name: "nan" }).loss(batch));
    expect(Exit.isFailure(nan) && Cause.squash(nan.cause)).toMatchObject({
      _tag: "PolicyLossInputError",
      field: "surrogate",
      trajectory: 0,
    });
    expect(Exit.isFailure(nan) && Cause.hasDies(nan.cause)).toBe(false);
    const throws = Effect.runSyncExit(makeAlgorithm({ name: "throws" }).loss(batch));
    expect(Exit.isFailure(throws) && Cause.hasDies(throws.cause)).toBe(true);
  });
});
