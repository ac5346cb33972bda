/**
 * From a rollout's trajectories to the learner's per-token coefficients, as plain functions:
 * leave out failed episodes and (optionally) groups without signal, group advantages, the plan of
 * epochs × mini-batches, the sampler–learner mismatch and truncated importance sampling (TIS), then
 * per mini-batch the policy loss and its coefficients. The learner is never called here: the
 * trainer passes its log-probabilities in and its coefficients out.
 */
import type { LearnerSequence, Trajectory } from "@workflow-r1/core";
import { groupAdvantages } from "./advantages.js";
import type { ResolvedAlgorithm } from "./config.js";
import { PolicyLossInputError } from "./errors.js";
import { policyLossResolved } from "./loss.js";
import type { PolicyLossResult, PolicyLossTrajectory } from "./types.js";

/** Trajectories that may enter the update: no failure, at least one sampled token. */
export const usableTrajectories = (trajectories: ReadonlyArray<Trajectory>): Trajectory[] =>
  trajectories.filter(
    (t) => t.error === undefined && t.finishReason !== "error" && t.mask.some((m) => m === 1),
  );

/**
 * Split off groups whose rewards are all equal: their advantages are 0, they carry no signal.
 * A group of one stays (its advantage is r / (1 + eps), not zero). Kept trajectories come out
 * group by group, groups in order of first appearance.
 */
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

/** Counts the groups of a batch without dropping any. */
const countGroups = (trajectories: ReadonlyArray<Trajectory>) =>
  new Set(trajectories.map((t) => t.groupId)).size;

/** A source of shuffles for the update plan (the trainer's seeded RNG: `shuffle` permutes in place). */
export interface PlanRandom {
  readonly shuffle: (items: number[]) => unknown;
}

/**
 * The update plan: for each of `ppoEpochs` epochs, shuffle the batch order (in place, continuing
 * from the previous epoch's order), then cut it into `min(miniBatches, size)` mini-batches —
 * mini-batch m takes the positions k with k mod M = m. Returns the mini-batches in the order the
 * optimizer steps on them, as indices into the batch; none for an empty batch.
 */
export const updatePlan = (
  size: number,
  options: { readonly ppoEpochs: number; readonly miniBatches: number },
  random: PlanRandom,
): number[][] => {
  if (size === 0) return [];
  const order = Array.from({ length: size }, (_, i) => i);
  const miniBatches = Math.min(options.miniBatches, size);
  const plan: number[][] = [];
  for (let epoch = 0; epoch < options.ppoEpochs; epoch++) {
    random.shuffle(order);
    for (let m = 0; m < miniBatches; m++) plan.push(order.filter((_, k) => k % miniBatches === m));
  }
  return plan;
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

/** Sampler–learner mismatch on sampled tokens: mean and max |Δlogp| and a k3 estimate of KL(sampler ‖ learner). */
export const mismatchMetrics = (
  batch: ReadonlyArray<Trajectory>,
  learnerLogp: ReadonlyArray<ArrayLike<number>>,
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

/** Monte-Carlo entropy estimate of the sampling policy: E[−log p(sampled token)]. */
export const samplerEntropy = (batch: ReadonlyArray<Trajectory>): number =>
  meanOverMask((t, _i, p) => -t.samplerLogprobs[p]!, batch);

/**
 * Truncated importance sampling: per sampled token min(π_learner / π_sampler, cap), from the
 * learner's log-probabilities before the update; 0 where the mask is 0.
 */
export const tisWeights = (
  batch: ReadonlyArray<Trajectory>,
  learnerLogp: ReadonlyArray<ArrayLike<number>>,
  cap: number,
): Float64Array[] =>
  batch.map((t, i) => {
    const w = new Float64Array(t.mask.length);
    const logp = learnerLogp[i]!;
    for (let p = 0; p < w.length; p++)
      if (t.mask[p] === 1) w[p] = Math.min(Math.exp(logp[p]! - t.samplerLogprobs[p]!), cap);
    return w;
  });

/** What enters one update, before the learner has been asked anything. */
export interface UpdateBatch {
  /** The trajectories the update trains on (failed episodes, and uniform groups when set, left out). */
  readonly trajectories: ReadonlyArray<Trajectory>;
  /** The learner's input, one per trajectory of `trajectories`: tokens and mask. */
  readonly sequences: ReadonlyArray<LearnerSequence>;
  readonly advantages: Float64Array;
  /** Mini-batches in optimizer-step order (epochs × mini-batches), as indices into `trajectories`. Empty: nothing to train on. */
  readonly plan: ReadonlyArray<ReadonlyArray<number>>;
  /** Whether the loss needs the reference policy's log-probabilities (klCoef > 0). */
  readonly needsReference: boolean;
  /** `episodes/failed`, `groups/total`, `groups/dropped_uniform`, `update/trajectories`; `update/skipped: 1` with an empty plan. */
  readonly metrics: Readonly<Record<string, number>>;
}

/**
 * Filter, advantages and plan for one update. Throws `AdvantageInputError` (a non-finite reward…).
 */
export const prepareUpdate = (
  trajectories: ReadonlyArray<Trajectory>,
  algorithm: ResolvedAlgorithm,
  random: PlanRandom,
): UpdateBatch => {
  const usable = usableTrajectories(trajectories);
  const filtered = algorithm.dropUniformGroups
    ? dropUniformGroups(usable)
    : { kept: usable, droppedGroups: 0, groups: countGroups(usable) };
  const batch = filtered.kept;
  const metrics: Record<string, number> = {
    "episodes/failed": trajectories.length - usable.length,
    "groups/total": filtered.groups,
    "groups/dropped_uniform": filtered.droppedGroups,
    "update/trajectories": batch.length,
  };
  const needsReference = algorithm.loss.klCoef > 0;
  if (batch.length === 0)
    return {
      trajectories: batch,
      sequences: [],
      advantages: new Float64Array(0),
      plan: [],
      needsReference,
      metrics: { ...metrics, "update/skipped": 1 },
    };
  const advantages = groupAdvantages(
    batch.map((t) => t.reward),
    batch.map((t) => t.groupId),
    algorithm,
  );
  return {
    trajectories: batch,
    sequences: batch.map((t) => ({ tokens: t.tokens, mask: t.mask })),
    advantages,
    plan: updatePlan(batch.length, algorithm, random),
    needsReference,
    metrics,
  };
};

/** One mini-batch's coefficients for the learner, and the loss behind them. */
export interface MiniBatchUpdate {
  /** dLoss/dlogpNew per member of the mini-batch (TIS-weighted when `tisCap` is set). */
  readonly coefficients: Float64Array[];
  readonly result: PolicyLossResult;
}

const logpError = (field: string, message: string, trajectory?: number) =>
  new PolicyLossInputError({
    field,
    message: trajectory === undefined ? message : `trajectory ${trajectory}: ${message}`,
    ...(trajectory !== undefined && { trajectory }),
  });

/** One array per trajectory, each as long as the trajectory (what the learner must return). */
const checkPerTrajectory = (
  field: string,
  arrays: ReadonlyArray<ArrayLike<number>> | undefined,
  batch: ReadonlyArray<Trajectory>,
  indices: ReadonlyArray<number>,
) => {
  if (!Array.isArray(arrays) || arrays.length !== indices.length)
    throw logpError(
      field,
      `${field}: expected ${indices.length} arrays (one per trajectory), got ${Array.isArray(arrays) ? arrays.length : typeof arrays}`,
    );
  indices.forEach((i, k) => {
    const n = batch[i]!.mask.length;
    const a = arrays[k];
    if (a == null || a.length !== n)
      throw logpError(
        field,
        `${field} has length ${a == null ? a : a.length}, the trajectory has ${n} tokens`,
        i,
      );
  });
};

/**
 * One update in progress: created with the learner's log-probabilities before the first optimizer
 * step (and the reference policy's, when the loss has a KL term); `step` turns one mini-batch's
 * current log-probabilities into coefficients; `metrics` averages the mini-batches so far and adds
 * the batch's mismatch, entropy and advantage metrics. Throws `PolicyLossInputError`.
 */
export class UpdateState {
  private readonly tis: Float64Array[] | undefined;
  private readonly mismatch: Record<string, number>;
  private readonly sums: Record<string, number> = {};
  private steps = 0;

  constructor(
    private readonly algorithm: ResolvedAlgorithm,
    private readonly batch: UpdateBatch,
    private readonly logpOld: ReadonlyArray<ArrayLike<number>>,
    private readonly logpRef?: ReadonlyArray<ArrayLike<number>>,
  ) {
    const trajectories = batch.trajectories;
    const all = trajectories.map((_, i) => i);
    checkPerTrajectory("logpOld", logpOld, trajectories, all);
    if (logpRef !== undefined) checkPerTrajectory("logpRef", logpRef, trajectories, all);
    else if (algorithm.loss.klCoef > 0)
      throw logpError(
        "logpRef",
        `logpRef is missing; klCoef is ${algorithm.loss.klCoef} > 0, which needs the reference policy's log-probabilities`,
      );
    this.mismatch = mismatchMetrics(trajectories, logpOld);
    this.tis = algorithm.tisCap === null ? undefined : tisWeights(trajectories, logpOld, algorithm.tisCap);
  }

  /** Coefficients of mini-batch `index` of the plan, from the learner's current log-probabilities of its members. */
  step(index: number, logpNew: ReadonlyArray<ArrayLike<number>>): MiniBatchUpdate {
    const members = this.batch.plan[index];
    if (members === undefined)
      throw logpError(
        "miniBatch",
        `mini-batch ${index} is not in the plan (${this.batch.plan.length} mini-batches)`,
      );
    const trajectories = this.batch.trajectories;
    checkPerTrajectory("logpNew", logpNew, trajectories, members);
    const logpRef = this.logpRef;
    const losses: PolicyLossTrajectory[] = members.map((i, k) => {
      const t = trajectories[i]!;
      return {
        logpNew: logpNew[k]!,
        logpOld: this.logpOld[i]!,
        ...(logpRef && { logpRef: logpRef[i]! }),
        mask: t.mask,
        segments: t.segments,
        advantage: this.batch.advantages[i]!,
      };
    });
    const result = policyLossResolved(losses, this.algorithm.loss);
    const tis = this.tis;
    const coefficients = result.coefficients;
    if (tis !== undefined)
      coefficients.forEach((c, k) => {
        const weights = tis[members[k]!]!;
        for (let p = 0; p < c.length; p++) c[p] = c[p]! * weights[p]!;
      });
    const m = result.metrics;
    const metrics: Record<string, number> = {
      loss: result.loss,
      clip_fraction: m.clipFraction,
      unit_clip_fraction: m.unitClipFraction,
      approx_kl: m.approxKl,
      "ratio/mean": m.ratioMean,
      "ratio/min": m.ratioMin,
      "ratio/max": m.ratioMax,
      ...(m.klMean !== undefined && { kl_ref: m.klMean }),
    };
    for (const [k, v] of Object.entries(metrics)) this.sums[k] = (this.sums[k] ?? 0) + v;
    this.steps++;
    return { coefficients, result };
  }

  /**
   * The update's metrics: the batch's counts, the per-mini-batch metrics averaged over the steps so
   * far (`loss`, `clip_fraction`, `unit_clip_fraction`, `approx_kl`, `ratio/*`, `kl_ref`), the
   * sampler–learner mismatch (`mismatch/*`), `entropy` and `advantage/abs_mean`.
   */
  metrics(): Record<string, number> {
    const averaged = Object.fromEntries(Object.entries(this.sums).map(([k, v]) => [k, v / this.steps]));
    const advantages = this.batch.advantages;
    let absSum = 0;
    for (let i = 0; i < advantages.length; i++) absSum += Math.abs(advantages[i]!);
    return {
      ...this.batch.metrics,
      ...averaged,
      ...this.mismatch,
      entropy: samplerEntropy(this.batch.trajectories),
      "advantage/abs_mean": absSum / advantages.length,
    };
  }
}
