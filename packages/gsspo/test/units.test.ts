/**
 * Units come from `Trajectory.segments` (core's one definition of a Think-Action cycle): they equal
 * the units the loss used to re-derive from the mask, on random trajectories built the way rollouts
 * build them, and the loss is bit-identical to the loss before the change.
 */
import { segmentsFromMask } from "@workflow-r1/core";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import {
  PolicyLossInputError,
  type PolicyLossTrajectory,
  policyLoss,
  policyLossVariants,
  registerPolicyLoss,
  type UnitKind,
  unitsOf,
  unregisterPolicyLoss,
} from "../src/index.js";
import { legacyPolicyLoss } from "./fixtures/legacy-loss.js";
import { buildTrajectory, episodeShapeArb } from "./fixtures/trajectories.js";

afterEach(() => {
  for (const name of policyLossVariants()) unregisterPolicyLoss(name);
});

/** The units as the loss derived them from the mask before (its inline token / sequence / run logic). */
const maskDerivedUnits = (mask: ArrayLike<number>, units: UnitKind): number[] => {
  const ids: number[] = [];
  let next = 0;
  let inside = false;
  for (let t = 0; t < mask.length; t++) {
    if (mask[t] !== 1) {
      inside = false;
      ids.push(-1);
    } else if (units === "token") ids.push(next++);
    else if (units === "sequence") ids.push(0);
    else {
      if (!inside) {
        inside = true;
        next++;
      }
      ids.push(next - 1);
    }
  }
  return ids;
};

const kinds: UnitKind[] = ["token", "sequence", "subsequence"];

describe("units from Trajectory.segments", () => {
  it("equal the old mask-derived units for every unit kind (property)", () => {
    fc.assert(
      fc.property(episodeShapeArb, fc.constantFrom(...kinds), (shape, units) => {
        const t = buildTrajectory(shape, { reward: 1, groupId: "g" });
        expect(Array.from(unitsOf(t, units))).toEqual(maskDerivedUnits(t.mask, units));
        // and sub-sequences are the trajectory's segments, as core built and validates them
        if (units === "subsequence") expect(Array.from(unitsOf(t, units))).toEqual(Array.from(t.segments));
      }),
      { numRuns: 300 },
    );
  });

  it("give a loss bit-identical to the mask-derived loss (property)", () => {
    const batchArb = fc.array(
      fc.record({
        shape: episodeShapeArb,
        advantage: fc.double({ min: -2, max: 2, noNaN: true }),
        noise: fc.array(fc.double({ min: -2e-3, max: 2e-3, noNaN: true }), { minLength: 40, maxLength: 40 }),
      }),
      { minLength: 1, maxLength: 5 },
    );
    const configArb = fc.record({
      variant: fc.constantFrom("grpo", "gspo", "gsspo"),
      units: fc.constantFrom(undefined, ...kinds),
      aggregation: fc.constantFrom(undefined, "token-mean", "seq-mean-token-mean", "seq-mean-token-sum"),
      klCoef: fc.constantFrom(0, 0.01),
    } as const);
    fc.assert(
      fc.property(batchArb, configArb, (items, config) => {
        const batch: PolicyLossTrajectory[] = items.map(({ shape, advantage, noise }) => {
          const t = buildTrajectory(shape, { reward: 1, groupId: "g" });
          const logpOld = Array.from(t.tokens, (tok) => -0.2 - (tok % 9) / 5);
          return {
            logpOld,
            logpNew: logpOld.map((v, p) => v + noise[p % noise.length]!),
            logpRef: logpOld.map((v, p) => v - noise[(p + 3) % noise.length]!),
            mask: t.mask,
            segments: t.segments,
            advantage,
          };
        });
        const withoutSegments = batch.map(({ segments: _segments, ...rest }) => rest);
        const expected = legacyPolicyLoss(withoutSegments, config);
        const actual = policyLoss(batch, config);
        expect(actual.loss).toBe(expected.loss);
        expect(actual.metrics).toEqual(expected.metrics);
        expect(actual.coefficients).toEqual(expected.coefficients);
        // without segments the loss takes them from core's segmentsFromMask: the same numbers
        expect(policyLoss(withoutSegments, config)).toEqual(actual);
      }),
      { numRuns: 300 },
    );
  });

  it("the loss reads the segments it is given (it does not re-derive cycles from the mask)", () => {
    const mask = new Uint8Array([0, 1, 1, 0, 1, 1]);
    const logpOld = [0, -1, -1, 0, -1, -1];
    const logpNew = [0, -1 + 2e-4, -1 + 2e-4, 0, -1 - 8e-4, -1 - 8e-4];
    const own = policyLoss([{ logpNew, logpOld, mask, advantage: -1 }], { variant: "gsspo" });
    expect(own.metrics.units).toBe(2);
    // one segment id for both runs: one unit, mean log-ratio −3e-4 (inside the clip range)
    const merged = policyLoss([{ logpNew, logpOld, mask, segments: [-1, 0, 0, -1, 0, 0], advantage: -1 }], {
      variant: "gsspo",
    });
    expect(merged.metrics.units).toBe(1);
    expect(merged.metrics.ratioMean).toBeCloseTo(Math.exp(-3e-4), 12);
  });

  it("a custom segmentation receives the segments and maps them (pairs of cycles)", () => {
    registerPolicyLoss("pairs", {
      extends: "gsspo",
      segment: (_mask, segments) => Array.from(segments, (s) => (s < 0 ? -1 : s >> 1)),
    });
    const t = buildTrajectory(
      {
        prompt: 2,
        turns: [
          [2, 1],
          [3, 1],
          [1, 0],
        ],
      },
      { reward: 1, groupId: "g" },
    );
    expect(Array.from(t.segments)).toEqual(Array.from(segmentsFromMask(t.mask)));
    const logp = Array.from(t.tokens, () => -1);
    const r = policyLoss(
      [{ logpNew: logp, logpOld: logp, mask: t.mask, segments: t.segments, advantage: 1 }],
      {
        variant: "pairs",
      },
    );
    expect(r.metrics.units).toBe(2);
  });

  it("refuses segments that break the contract, naming trajectory, field and position", () => {
    const good = { logpNew: [0, -1, -1], logpOld: [0, -1, -1], mask: [0, 1, 1], advantage: 1 };
    const thrown = (segments: ArrayLike<number>) => {
      try {
        policyLoss([good, { ...good, segments }], { variant: "gsspo" });
      } catch (error) {
        return error;
      }
      throw new Error("expected a throw");
    };
    expect(thrown([-1, 0])).toBeInstanceOf(PolicyLossInputError);
    expect(thrown([-1, 0])).toMatchObject({ field: "segments", trajectory: 1 });
    expect(thrown([-1, 0, 7])).toMatchObject({ field: "segments", trajectory: 1, position: 2 });
    expect(thrown([0, 0, 0])).toMatchObject({ field: "segments", trajectory: 1, position: 0 });
    expect(thrown([-1, 0, 0.5])).toMatchObject({ field: "segments", position: 2 });
    // token and sequence units never read segments (but their length is still checked)
    expect(policyLoss([{ ...good, segments: [-1, 5, 9] }], { variant: "grpo" }).metrics.units).toBe(2);
  });
});
