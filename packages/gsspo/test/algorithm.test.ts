import { it } from "@effect/vitest";
import { Cause, Effect, Exit, Layer } from "effect";
import { describe, expect } from "vitest";
import {
  AdvantageInputError,
  Algorithm,
  groupAdvantages,
  PolicyLossInputError,
  policyLoss,
  registerPolicyLoss,
  unregisterPolicyLoss,
} from "../src/index.js";

const batch = [
  { logpNew: [-1, -0.9, -1.2], logpOld: [-1, -1, -1], mask: [1, 0, 1], advantage: 0.8 },
  { logpNew: [-2, -2.1], logpOld: [-2, -2], mask: [1, 1], advantage: -0.8 },
];

describe("Algorithm service", () => {
  it.effect("loss and advantages match the plain functions for the layer's config", () =>
    Effect.gen(function* () {
      const algorithm = yield* Algorithm;
      expect(algorithm.settings).toMatchObject({ variant: "grpo", clipHigh: 0.28, dualClip: 3 });
      const result = yield* algorithm.loss(batch);
      expect(result).toEqual(policyLoss(batch, { variant: "grpo", clipHigh: 0.28 }));
      const adv = yield* algorithm.advantages([1, 0, 1, 1], ["a", "a", "b", "b"]);
      expect(adv).toEqual(groupAdvantages([1, 0, 1, 1], ["a", "a", "b", "b"], { normalizeByStd: false }));
      expect(Array.from(adv)).toEqual([0.5, -0.5, 0, 0]);
    }).pipe(Effect.provide(Algorithm.layer({ variant: "grpo", clipHigh: 0.28, normalizeByStd: false }))),
  );

  it.effect("bad input fails with the typed error (not a defect)", () =>
    Effect.gen(function* () {
      const algorithm = yield* Algorithm;
      const lossError = yield* Effect.flip(algorithm.loss([{ ...batch[0]!, logpOld: [-1] }]));
      expect(lossError).toBeInstanceOf(PolicyLossInputError);
      expect(lossError).toMatchObject({ field: "logpOld", trajectory: 0 });
      const advError = yield* Effect.flip(algorithm.advantages([1, Number.NaN], [0, 0]));
      expect(advError).toBeInstanceOf(AdvantageInputError);
      expect(advError).toMatchObject({ field: "rewards", trajectory: 1 });
    }).pipe(Effect.provide(Algorithm.layer())),
  );

  it.effect("an invalid config fails when the layer is built", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(Layer.build(Algorithm.layer({ variant: "nope" })).pipe(Effect.scoped));
      expect(Exit.isFailure(exit)).toBe(true);
      if (Exit.isFailure(exit)) {
        const error = Cause.squash(exit.cause);
        expect(error).toMatchObject({ _tag: "PolicyLossInputError", field: "variant" });
      }
      const eps = yield* Effect.exit(Layer.build(Algorithm.layer({ eps: -1 })).pipe(Effect.scoped));
      expect(Exit.isFailure(eps) && Cause.squash(eps.cause)).toMatchObject({
        _tag: "AdvantageInputError",
        field: "eps",
      });
    }),
  );

  it.effect("an exception thrown by a variant's own code stays a defect", () =>
    Effect.gen(function* () {
      registerPolicyLoss("throws", {
        segment: () => {
          throw new Error("boom");
        },
      });
      const exit = yield* Effect.exit(
        Effect.gen(function* () {
          const algorithm = yield* Algorithm;
          return yield* algorithm.loss(batch);
        }).pipe(Effect.provide(Algorithm.layer({ variant: "throws" }))),
      );
      unregisterPolicyLoss("throws");
      expect(Exit.isFailure(exit) && Cause.hasDies(exit.cause)).toBe(true);
    }),
  );
});
