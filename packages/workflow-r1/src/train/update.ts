/**
 * One policy update from a batch of trajectories: drop failed episodes and groups without signal,
 * group advantages, old (and reference) logprobs recomputed by the learner, then for each PPO
 * epoch and mini-batch: learner logprobs → policy loss and coefficients → backward → step.
 * The algorithm never sees the model and the learner never sees the algorithm: they meet in
 * per-token arrays only.
 */
import type { LearnerSequence, LearnerShape, Trajectory } from "@workflow-r1/core";
import { groupAdvantages, policyLoss } from "@workflow-r1/gsspo";
import { Effect } from "effect";
import type { TrainConfig } from "../config.js";
import type { Rng } from "./random.js";

export interface UpdateMetrics {
  readonly [key: string]: number;
}

/** Trajectories that may enter the update: no failure, at least one sampled token. */
export const usableTrajectories = (trajectories: ReadonlyArray<Trajectory>): Trajectory[] =>
  trajectories.filter(
    (t) => t.error === undefined && t.finishReason !== "error" && t.mask.some((m) => m === 1),
  );

/** Split off groups whose rewards are all equal: their advantages are 0, they carry no signal. */
export const dropUniformGroups = (trajectories: ReadonlyArray<Trajectory>) => {
  const byGroup = new Map<string, Trajectory[]>();
  for (const t of trajectories) {
    const group = byGroup.get(t.groupId);
    if (group) group.push(t);
    else byGroup.set(t.groupId, [t]);
  }
  const kept: Trajectory[] = [];
  let dropped = 0;
  for (const group of byGroup.values()) {
    const first = group[0]!.reward;
    if (group.length > 1 && group.every((t) => t.reward === first)) dropped++;
    else kept.push(...group);
  }
  return { kept, droppedGroups: dropped, groups: byGroup.size };
};

const meanOverMask = (
  values: (t: Trajectory, i: number, pos: number) => number,
  batch: ReadonlyArray<Trajectory>,
) => {
  let sum = 0;
  let n = 0;
  batch.forEach((t, i) => {
    for (let p = 0; p < t.mask.length; p++)
      if (t.mask[p] === 1) {
        sum += values(t, i, p);
        n++;
      }
  });
  return n === 0 ? 0 : sum / n;
};

/** Sampler–learner mismatch on sampled tokens: mean |Δlogp| and a k3 estimate of KL(sampler ‖ learner). */
export const mismatchMetrics = (
  batch: ReadonlyArray<Trajectory>,
  learnerLogp: ReadonlyArray<Float32Array>,
) => ({
  "mismatch/abs_mean": meanOverMask(
    (t, i, p) => Math.abs(learnerLogp[i]![p]! - t.samplerLogprobs[p]!),
    batch,
  ),
  "mismatch/abs_max": batch.reduce((m, t, i) => {
    for (let p = 0; p < t.mask.length; p++)
      if (t.mask[p] === 1) m = Math.max(m, Math.abs(learnerLogp[i]![p]! - t.samplerLogprobs[p]!));
    return m;
  }, 0),
  // k3(q‖p) with q the sampler: E_q[r − 1 − log r], r = p/q — non-negative and low-variance.
  "mismatch/kl": meanOverMask((t, i, p) => {
    const d = learnerLogp[i]![p]! - t.samplerLogprobs[p]!;
    return Math.exp(d) - 1 - d;
  }, batch),
});

export const updatePolicy = (
  trajectories: ReadonlyArray<Trajectory>,
  config: TrainConfig,
  learner: LearnerShape,
  rng: Rng,
  reference?: LearnerShape,
) =>
  Effect.gen(function* () {
    const usable = usableTrajectories(trajectories);
    const { kept: batch, droppedGroups, groups } = dropUniformGroups(usable);
    const base: Record<string, number> = {
      "episodes/failed": trajectories.length - usable.length,
      "groups/total": groups,
      "groups/dropped_uniform": droppedGroups,
      "update/trajectories": batch.length,
    };
    if (batch.length === 0) return { ...base, "update/skipped": 1, learnerTokens: 0 } as UpdateMetrics;

    const advantages = groupAdvantages(
      batch.map((t) => t.reward),
      batch.map((t) => t.groupId),
      { normalizeByStd: config.algorithm.normalizeByStd },
    );
    const sequences: LearnerSequence[] = batch.map((t) => ({ tokens: t.tokens, mask: t.mask }));
    const learnerTokens = sequences.reduce((n, s) => n + s.tokens.length, 0);

    // Where the learner's time goes: forward passes, backward passes, optimizer steps, the loss.
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

    // Old logprobs come from the learner (not the sampler), so the ratio starts at exactly 1.
    const logpOld = yield* timed("time/learner_forward", learner.logprobs(sequences));
    const logpRef =
      config.algorithm.klCoef > 0 && reference
        ? yield* timed("time/learner_forward", reference.logprobs(sequences))
        : undefined;
    const mismatch = mismatchMetrics(batch, logpOld);

    // Truncated importance sampling: weight each token by min(π_learner / π_sampler, C).
    const tisCap = config.algorithm.tisCap;
    const tisWeights =
      tisCap === null
        ? undefined
        : batch.map((t, i) => {
            const w = new Float64Array(t.mask.length);
            for (let p = 0; p < w.length; p++)
              if (t.mask[p] === 1) w[p] = Math.min(Math.exp(logpOld[i]![p]! - t.samplerLogprobs[p]!), tisCap);
            return w;
          });

    const lossConfig = {
      variant: config.algorithm.name,
      ...(config.algorithm.clipLow !== undefined && { clipLow: config.algorithm.clipLow }),
      ...(config.algorithm.clipHigh !== undefined && { clipHigh: config.algorithm.clipHigh }),
      ...(config.algorithm.dualClip !== undefined && { dualClip: config.algorithm.dualClip }),
      ...(config.algorithm.aggregation !== undefined && { aggregation: config.algorithm.aggregation }),
      klCoef: config.algorithm.klCoef,
      klEstimator: config.algorithm.klEstimator,
    };

    const order = batch.map((_, i) => i);
    const miniBatches = Math.min(config.learner.miniBatches, batch.length);
    const sums: Record<string, number> = {};
    let updates = 0;
    let gradNorm = 0;
    let weightsChanged = false;
    for (let epoch = 0; epoch < config.learner.ppoEpochs; epoch++) {
      rng.shuffle(order);
      for (let m = 0; m < miniBatches; m++) {
        const members = order.filter((_, k) => k % miniBatches === m);
        const mbSequences = members.map((i) => sequences[i]!);
        // Before the first optimizer step the new logprobs are the old ones: skip the forward pass.
        const logpNew = weightsChanged
          ? yield* timed("time/learner_forward", learner.logprobs(mbSequences))
          : members.map((i) => logpOld[i]!);
        const lossStart = performance.now();
        const result = policyLoss(
          members.map((i, k) => ({
            logpNew: logpNew[k]!,
            logpOld: logpOld[i]!,
            ...(logpRef && { logpRef: logpRef[i]! }),
            mask: batch[i]!.mask,
            advantage: advantages[i]!,
          })),
          lossConfig,
        );
        const coefficients = result.coefficients.map((c, k) => {
          const weights = tisWeights?.[members[k]!];
          if (weights) for (let p = 0; p < c.length; p++) c[p] = c[p]! * weights[p]!;
          return c;
        });
        seconds["time/algorithm"]! += (performance.now() - lossStart) / 1000;
        yield* timed("time/learner_backward", learner.backward(mbSequences, coefficients));
        const stats = yield* timed("time/optimizer", learner.step());
        weightsChanged = true;
        gradNorm = stats.gradNorm;
        const metrics: Record<string, number> = {
          loss: result.loss,
          clip_fraction: result.metrics.clipFraction,
          unit_clip_fraction: result.metrics.unitClipFraction,
          approx_kl: result.metrics.approxKl,
          "ratio/mean": result.metrics.ratioMean,
          "ratio/min": result.metrics.ratioMin,
          "ratio/max": result.metrics.ratioMax,
          grad_norm: stats.gradNorm,
          ...(result.metrics.klMean !== undefined && { kl_ref: result.metrics.klMean }),
        };
        for (const [k, v] of Object.entries(metrics)) sums[k] = (sums[k] ?? 0) + v;
        updates++;
      }
    }
    const averaged = Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / updates]));
    return {
      ...base,
      ...averaged,
      grad_norm_last: gradNorm,
      ...mismatch,
      // Monte-Carlo entropy estimate of the sampling policy: E[−log p(sampled token)].
      entropy: meanOverMask((t, _i, p) => -t.samplerLogprobs[p]!, batch),
      "advantage/abs_mean": advantages.reduce((s, a) => s + Math.abs(a), 0) / advantages.length,
      ...seconds,
      learnerTokens,
    } as UpdateMetrics;
  });
