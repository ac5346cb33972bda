/**
 * Stale-policy guard: after every weight reload, the policy (llama.cpp) and the learner (ggml)
 * must give the same log-probabilities on a fixed probe sequence. A policy that silently kept
 * old weights would otherwise train on off-policy data without anyone noticing.
 */
import { type LearnerShape, PolicyError, type PolicyShape } from "@workflow-r1/core";
import { Effect } from "effect";

export const probeAgreement = (
  policy: PolicyShape,
  learner: LearnerShape,
  probe: Int32Array,
  tolerance: number,
) =>
  Effect.gen(function* () {
    const fromPolicy = yield* policy.score(probe, 1);
    const mask = new Uint8Array(probe.length).fill(1);
    mask[0] = 0;
    const [fromLearner] = yield* learner.logprobs([{ tokens: probe, mask }]);
    let maxDiff = 0;
    for (let i = 0; i < fromPolicy.length; i++)
      maxDiff = Math.max(maxDiff, Math.abs(fromPolicy[i]! - fromLearner![i + 1]!));
    if (!(maxDiff <= tolerance))
      return yield* new PolicyError({
        message:
          `the policy's logprobs on the probe sequence differ from the learner's by ${maxDiff.toExponential(2)} ` +
          `(tolerance ${tolerance}): the sampler is not running the weights being trained (stale reload?). Stopping.`,
      });
    return maxDiff;
  });
