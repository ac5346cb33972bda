/**
 * Stale-weights guard. After every export + reload, the policy (llama.cpp) must be running the
 * weights the learner (ggml) just produced. A fixed tolerance cannot tell stale weights from
 * another backend's rounding (CUDA kernels moved the probe by 1.8e-2 against the learner), so
 * the guard compares the policy's probe log-probabilities with the learner's under the new
 * weights AND under the previous ones: a fresh policy is far closer to the new, a stale one to
 * the previous. The rounding tolerance itself is measured at start-up, when both sides hold
 * the same weights by construction.
 */
import { type LearnerShape, PolicyError, type PolicyShape } from "@workflow-r1/core";
import { Effect } from "effect";

/** The learner's log-probabilities of the probe (entry i: token i + 1). */
export const learnerProbe = (learner: LearnerShape, probe: Int32Array) =>
  Effect.gen(function* () {
    const mask = new Uint8Array(probe.length).fill(1);
    mask[0] = 0;
    const [lp] = yield* learner.logprobs([{ tokens: probe, mask }]);
    return lp!.subarray(1);
  });

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

/** Largest start-up disagreement accepted: beyond it the two sides do not run the same model. */
export const MAX_STARTUP_DISAGREEMENT = 0.5;

/**
 * Measures the policy–learner disagreement on identical weights and returns the tolerance:
 * 4× that, at least `floor`. Fails when the two disagree by more than MAX_STARTUP_DISAGREEMENT.
 */
export const calibrateGuard = (policy: PolicyShape, learner: LearnerShape, probe: Int32Array, floor = 1e-4) =>
  Effect.gen(function* () {
    const fromPolicy = yield* policy.score(probe, 1);
    const fromLearner = yield* learnerProbe(learner, probe);
    const disagreement = maxAbsDiff(fromPolicy, fromLearner);
    if (!(disagreement <= MAX_STARTUP_DISAGREEMENT))
      return yield* new PolicyError({
        message:
          `the policy and the learner disagree by ${disagreement.toExponential(2)} on the probe with the same ` +
          `weights (limit ${MAX_STARTUP_DISAGREEMENT}): they do not run the same model or tokenizer. Stopping.`,
      });
    return { disagreement, tolerance: Math.max(4 * disagreement, floor) };
  });

export interface GuardReading {
  /** max |policy − learner under the new weights| */
  readonly toNew: number;
  /** max |policy − learner under the previous weights| */
  readonly toPrevious: number;
  /** max |learner new − learner previous|: how far the update moved the probe */
  readonly shift: number;
  readonly tolerance: number;
}

/**
 * Fresh when the policy is within the tolerance of the new weights, or (rounding above the
 * start-up estimate) at most half as far from the new weights as from the previous ones after an
 * update that moved the probe beyond the tolerance. Otherwise stale.
 */
export const isFresh = (r: GuardReading): boolean =>
  r.toNew <= r.tolerance || (r.shift > r.tolerance && r.toNew <= 0.5 * r.toPrevious);

/** Scores the probe with the reloaded policy and stops the run on stale weights. */
export const checkReload = (
  policy: PolicyShape,
  learner: LearnerShape,
  probe: Int32Array,
  previous: Float32Array,
  tolerance: number,
) =>
  Effect.gen(function* () {
    const fromPolicy = yield* policy.score(probe, 1);
    const fromLearner = yield* learnerProbe(learner, probe);
    const reading: GuardReading = {
      toNew: maxAbsDiff(fromPolicy, fromLearner),
      toPrevious: maxAbsDiff(fromPolicy, previous),
      shift: maxAbsDiff(fromLearner, previous),
      tolerance,
    };
    if (!isFresh(reading))
      return yield* new PolicyError({
        message:
          `the policy is not running the weights being trained (stale reload?): on the probe it differs from the ` +
          `learner's new weights by ${reading.toNew.toExponential(2)} and from the previous ones by ` +
          `${reading.toPrevious.toExponential(2)} (the update moved the probe by ${reading.shift.toExponential(2)}; ` +
          `rounding tolerance ${tolerance.toExponential(2)}, measured at start-up). Stopping.`,
      });
    return reading;
  });
