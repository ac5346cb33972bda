import { it } from "@effect/vitest";
import { mulberry32, Random } from "@workflow-r1/core";
import { Cause, Effect, Exit, Layer } from "effect";
import { describe, expect } from "vitest";
import {
  AdvantageInputError,
  Algorithm,
  AlgorithmConfigError,
  groupAdvantages,
  makeAlgorithm,
  PolicyLossInputError,
  policyLoss,
  registerPolicyLoss,
  unregisterPolicyLoss,
} from "../src/index.js";
import { buildTrajectory, fakeLearner, randomRollout } from "./fixtures/trajectories.js";

const batch = [
  { logpNew: [-1, -0.9, -1.2], logpOld: [-1, -1, -1], mask: [1, 0, 1], advantage: 0.8 },
  { logpNew: [-2, -2.1], logpOld: [-2, -2], mask: [1, 1], advantage: -0.8 },
];

/** The failure of an exit, asserting it is a typed failure and not a defect. */
const failureOf = <A, E>(exit: Exit.Exit<A, E>) => {
  expect(Exit.isFailure(exit)).toBe(true);
  if (!Exit.isFailure(exit)) throw new Error("expected a failure");
  expect(Cause.hasDies(exit.cause)).toBe(false);
  return Cause.squash(exit.cause);
};

describe("Algorithm service", () => {
  it.effect("loss and advantages match the plain functions for the layer's config", () =>
    Effect.gen(function* () {
      const algorithm = yield* Algorithm;
      expect(algorithm.settings).toMatchObject({ variant: "grpo", clipHigh: 0.28, dualClip: 3 });
      expect(algorithm.config).toMatchObject({
        normalizeByStd: false,
        eps: 1e-6,
        tisCap: null,
        miniBatches: 1,
      });
      expect(algorithm.needsReference).toBe(false);
      const result = yield* algorithm.loss(batch);
      expect(result).toEqual(policyLoss(batch, { variant: "grpo", clipHigh: 0.28 }));
      const adv = yield* algorithm.advantages([1, 0, 1, 1], ["a", "a", "b", "b"]);
      expect(adv).toEqual(groupAdvantages([1, 0, 1, 1], ["a", "a", "b", "b"], { normalizeByStd: false }));
      expect(Array.from(adv)).toEqual([0.5, -0.5, 0, 0]);
    }).pipe(Effect.provide(Algorithm.layer({ name: "grpo", clipHigh: 0.28, normalizeByStd: false }))),
  );

  it.effect("an update: prepare → begin → step per mini-batch → metrics", () =>
    Effect.gen(function* () {
      const algorithm = yield* Algorithm;
      const rollout = randomRollout(mulberry32(2), 4, 4);
      const update = yield* algorithm.prepare(rollout, new Random(3));
      expect(update.plan).toHaveLength(2);
      expect(update.sequences.map((s) => s.tokens)).toEqual(update.trajectories.map((t) => t.tokens));
      const learner = fakeLearner();
      const logpOld = learner.logprobs(update.sequences);
      const session = yield* algorithm.begin(update, logpOld);
      for (const [k, members] of update.plan.entries()) {
        const { coefficients } = yield* session.step(
          k,
          members.map((i) => logpOld[i]!),
        );
        expect(coefficients).toHaveLength(members.length);
      }
      const metrics = session.metrics();
      expect(Object.keys(metrics)).toEqual([
        "episodes/failed",
        "groups/total",
        "groups/dropped_uniform",
        "update/trajectories",
        "loss",
        "clip_fraction",
        "unit_clip_fraction",
        "approx_kl",
        "ratio/mean",
        "ratio/min",
        "ratio/max",
        "mismatch/abs_mean",
        "mismatch/abs_max",
        "mismatch/kl",
        "entropy",
        "advantage/abs_mean",
      ]);
      // at the starting weights every ratio is 1: nothing clipped
      expect(metrics["clip_fraction"]).toBe(0);
    }).pipe(Effect.provide(Algorithm.layer({ name: "gsspo", miniBatches: 2 }))),
  );

  it.effect("bad input fails with the typed error (not a defect) at every step of an update", () =>
    Effect.gen(function* () {
      const algorithm = yield* Algorithm;
      const lossError = failureOf(yield* Effect.exit(algorithm.loss([{ ...batch[0]!, logpOld: [-1] }])));
      expect(lossError).toBeInstanceOf(PolicyLossInputError);
      expect(lossError).toMatchObject({ field: "logpOld", trajectory: 0 });
      const advError = failureOf(yield* Effect.exit(algorithm.advantages([1, Number.NaN], [0, 0])));
      expect(advError).toBeInstanceOf(AdvantageInputError);
      expect(advError).toMatchObject({ field: "rewards", trajectory: 1 });

      // a reward the rollout got wrong: the advantages refuse it while preparing
      const shape = { prompt: 1, turns: [[2, 1]] as const };
      const rollout = [
        buildTrajectory(shape, { reward: 1, groupId: "a" }),
        buildTrajectory(shape, { reward: Number.POSITIVE_INFINITY, groupId: "a" }),
      ];
      const prepareError = failureOf(yield* Effect.exit(algorithm.prepare(rollout, new Random(1))));
      expect(prepareError).toMatchObject({ _tag: "AdvantageInputError", field: "rewards", trajectory: 1 });

      // what the learner returned does not fit the batch
      const update = yield* algorithm.prepare(randomRollout(mulberry32(4), 2, 4), new Random(1));
      const logpOld = fakeLearner().logprobs(update.sequences);
      const beginError = failureOf(yield* Effect.exit(algorithm.begin(update, logpOld.slice(1))));
      expect(beginError).toMatchObject({ _tag: "PolicyLossInputError", field: "logpOld" });
      // the loss needs a reference and got none
      const needsRef = failureOf(
        yield* Effect.exit(makeAlgorithm({ name: "gsspo", klCoef: 0.001 }).begin(update, logpOld)),
      );
      expect(needsRef).toMatchObject({ _tag: "PolicyLossInputError", field: "logpRef" });
      const session = yield* algorithm.begin(update, logpOld);
      const members = update.plan[0]!;
      const nonFinite = members.map((i) =>
        Float64Array.from(logpOld[i]!, (v) => (Number.isNaN(v) ? v : Infinity)),
      );
      const stepError = failureOf(yield* Effect.exit(session.step(0, nonFinite)));
      expect(stepError).toMatchObject({ _tag: "PolicyLossInputError", field: "logpNew" });
    }).pipe(Effect.provide(Algorithm.layer())),
  );

  it.effect(
    "an invalid config fails when the layer is built, with AlgorithmConfigError naming the field",
    () =>
      Effect.gen(function* () {
        const build = (config: unknown) =>
          Effect.gen(function* () {
            const exit = yield* Effect.exit(
              Layer.build(Algorithm.layer(config as never)).pipe(Effect.scoped),
            );
            return failureOf(exit);
          });
        const unknownVariant = yield* build({ name: "nope" });
        expect(unknownVariant).toBeInstanceOf(AlgorithmConfigError);
        expect(unknownVariant).toMatchObject({ field: "name" });
        expect((unknownVariant as Error).message).toContain("grpo, gspo, gsspo");
        expect(yield* build({ name: "gsspo", eps: Number.POSITIVE_INFINITY })).toMatchObject({
          _tag: "AlgorithmConfigError",
          field: "eps",
        });
        expect(yield* build({ name: "gsspo", miniBatches: 0 })).toMatchObject({ field: "miniBatches" });
        expect(yield* build({ name: "gsspo", tisCap: -1 })).toMatchObject({ field: "tisCap" });
        expect(yield* build({ name: "gsspo", clipLo: 0.1 })).toMatchObject({ field: "clipLo" });
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
        }).pipe(Effect.provide(Algorithm.layer({ name: "throws" }))),
      );
      unregisterPolicyLoss("throws");
      expect(Exit.isFailure(exit) && Cause.hasDies(exit.cause)).toBe(true);
    }),
  );
});
