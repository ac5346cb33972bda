/**
 * One policy update: the algorithm (@workflow-r1/gsspo's `Algorithm` service) turns the rollout's
 * trajectories into a plan and, mini-batch by mini-batch, into per-token coefficients; the learner
 * supplies log-probabilities and applies the coefficients. Filtering, advantages, TIS, the loss and
 * the metrics are the algorithm's; this file only passes arrays between the two and times them.
 * The algorithm never sees the model and the learner never sees the algorithm.
 */
import type { LearnerShape, Trajectory } from "@workflow-r1/core";
import { Algorithm, type PlanRandom } from "@workflow-r1/gsspo";
import { Effect } from "effect";

export interface UpdateMetrics {
  readonly [key: string]: number;
}

export const updatePolicy = (
  trajectories: ReadonlyArray<Trajectory>,
  learner: LearnerShape,
  random: PlanRandom,
  reference?: LearnerShape,
) =>
  Effect.gen(function* () {
    const algorithm = yield* Algorithm;
    // Where the update's time goes: forward passes, backward passes, optimizer steps, the algorithm.
    const seconds: Record<string, number> = {
      "time/learner_forward": 0,
      "time/learner_backward": 0,
      "time/optimizer": 0,
      "time/algorithm": 0,
    };
    const timed = <A, E, R>(key: string, effect: Effect.Effect<A, E, R>) =>
      Effect.gen(function* () {
        const t0 = performance.now();
        const a = yield* effect;
        seconds[key] = (seconds[key] ?? 0) + (performance.now() - t0) / 1000;
        return a;
      });

    const batch = yield* timed("time/algorithm", algorithm.prepare(trajectories, random));
    if (batch.plan.length === 0) return { ...batch.metrics, learnerTokens: 0 } as UpdateMetrics;
    const { sequences, plan } = batch;
    const learnerTokens = sequences.reduce((n, s) => n + s.tokens.length, 0);

    // The reference first: with LoRA it is the learner's own base (adapter off), and a forward
    // pass of it would discard the activations that `logprobs` keeps for the first backward.
    const logpRef =
      batch.needsReference && reference
        ? yield* timed("time/learner_forward", reference.logprobs(sequences))
        : undefined;
    // Old logprobs come from the learner (not the sampler), so the ratio starts at exactly 1.
    const logpOld = yield* timed("time/learner_forward", learner.logprobs(sequences));
    const update = yield* timed("time/algorithm", algorithm.begin(batch, logpOld, logpRef));

    let gradNormSum = 0;
    let gradNorm = 0;
    for (const [k, members] of plan.entries()) {
      const miniBatch = members.map((i) => sequences[i]!);
      // Before the first optimizer step the new logprobs are the old ones: skip the forward pass.
      const logpNew =
        k === 0
          ? members.map((i) => logpOld[i]!)
          : yield* timed("time/learner_forward", learner.logprobs(miniBatch));
      const { coefficients } = yield* timed("time/algorithm", update.step(k, logpNew));
      yield* timed("time/learner_backward", learner.backward(miniBatch, coefficients));
      const stats = yield* timed("time/optimizer", learner.step());
      gradNorm = stats.gradNorm;
      gradNormSum += gradNorm;
    }
    return {
      ...update.metrics(),
      grad_norm: gradNormSum / plan.length,
      grad_norm_last: gradNorm,
      ...seconds,
      learnerTokens,
    } as UpdateMetrics;
  });
