/**
 * Stale-weights guard. After every export + reload, the policy (llama.cpp) must be running the
 * weights the learner (ggml) just produced. A fixed tolerance cannot tell stale weights from
 * another backend's rounding (CUDA kernels moved the probe by 1.8e-2 against the learner), so
 * the guard compares the policy's probe log-probabilities with the learner's under the new
 * weights AND under the previous ones: a fresh policy is far closer to the new, a stale one to
 * the previous. The rounding tolerance itself is measured at start-up, when both sides hold
 * the same weights by construction.
 *
 * On a quantized base (LoRA over Q4_1, say) the two sides disagree by as much as a real update
 * moves the probe (~0.5 max |Δ logp| on SmolLM2: both quantize activations, and small upstream
 * differences flip those roundings), so the tolerance alone would accept anything. The guard also
 * asks the policy to have moved: llama.cpp scores deterministically, so a policy that kept its
 * weights gives bit-identical probe scores while the learner's moved.
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

const meanAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return a.length === 0 ? 0 : s / a.length;
};

/**
 * Largest start-up disagreement accepted, as the mean |Δ logp| over the probe: beyond it the two
 * sides do not run the same model. (A mean, not a max: a quantized base puts single tokens ~0.5
 * apart while the mean stays ~0.07; another model or tokenizer is nats apart on average.)
 */
export const MAX_STARTUP_DISAGREEMENT = 0.5;

/**
 * Measures the policy–learner disagreement on identical weights and returns the tolerance:
 * 4× the largest difference, at least `floor`, and the policy's probe scores (what the first
 * check compares the reloaded policy with). Fails when the mean difference exceeds
 * MAX_STARTUP_DISAGREEMENT.
 */
export const calibrateGuard = (policy: PolicyShape, learner: LearnerShape, probe: Int32Array, floor = 1e-4) =>
  Effect.gen(function* () {
    const fromPolicy = yield* policy.score(probe, 1);
    const fromLearner = yield* learnerProbe(learner, probe);
    const disagreement = maxAbsDiff(fromPolicy, fromLearner);
    const mean = meanAbsDiff(fromPolicy, fromLearner);
    if (!(mean <= MAX_STARTUP_DISAGREEMENT))
      return yield* new PolicyError({
        message:
          `the policy and the learner disagree by ${mean.toExponential(2)} on average (max ` +
          `${disagreement.toExponential(2)}) on the probe with the same weights (limit ${MAX_STARTUP_DISAGREEMENT}): ` +
          "they do not run the same model or tokenizer. Stopping.",
      });
    return { disagreement, tolerance: Math.max(4 * disagreement, floor), policyScores: fromPolicy };
  });

export interface GuardReading {
  /** max |policy − learner under the new weights| */
  readonly toNew: number;
  /** max |policy − learner under the previous weights| */
  readonly toPrevious: number;
  /** max |learner new − learner previous|: how far the update moved the probe */
  readonly shift: number;
  /** max |policy now − policy before the reload|: whether the policy's weights changed at all */
  readonly policyMove: number;
  readonly tolerance: number;
}

/**
 * Fresh when the policy's scores changed if the learner's did, and the policy is within the
 * tolerance of the new weights, or (rounding above the start-up estimate) at most half as far
 * from the new weights as from the previous ones after an update that moved the probe beyond the
 * tolerance. Otherwise stale.
 */
export const isFresh = (r: GuardReading): boolean =>
  // A learner that moved the probe with a policy whose scores did not change at all: stale,
  // whatever the tolerance (this is what catches it on quantized bases).
  (r.shift <= STILL || r.policyMove > 0) &&
  (r.toNew <= r.tolerance || (r.shift > r.tolerance && r.toNew <= 0.5 * r.toPrevious));

/** A learner shift below this is float noise, not an update (an update moves logprobs far more). */
const STILL = 1e-6;

/** Scores the probe with the reloaded policy and stops the run on stale weights. */
export const checkReload = (
  policy: PolicyShape,
  learner: LearnerShape,
  probe: Int32Array,
  previous: Float32Array,
  tolerance: number,
  /** The policy's probe scores before the reload (calibrateGuard's, then each check's). */
  previousPolicy: Float32Array,
) =>
  Effect.gen(function* () {
    const fromPolicy = yield* policy.score(probe, 1);
    const fromLearner = yield* learnerProbe(learner, probe);
    const reading: GuardReading = {
      toNew: maxAbsDiff(fromPolicy, fromLearner),
      toPrevious: maxAbsDiff(fromPolicy, previous),
      shift: maxAbsDiff(fromLearner, previous),
      policyMove: maxAbsDiff(fromPolicy, previousPolicy),
      tolerance,
    };
    if (!isFresh(reading))
      return yield* new PolicyError({
        message:
          `the policy is not running the weights being trained (stale reload?): on the probe it differs from the ` +
          `learner's new weights by ${reading.toNew.toExponential(2)} and from the previous ones by ` +
          `${reading.toPrevious.toExponential(2)} (the update moved the probe by ${reading.shift.toExponential(2)} ` +
          `in the learner and by ${reading.policyMove.toExponential(2)} in the policy; rounding tolerance ` +
          `${tolerance.toExponential(2)}, measured at start-up). Stopping.`,
      });
    return { ...reading, policyScores: fromPolicy };
  });
