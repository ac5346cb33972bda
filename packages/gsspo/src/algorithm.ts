/**
 * The Effect boundary: an `Algorithm` service built from one {@link AlgorithmConfig}. It turns a
 * rollout's trajectory groups into per-token coefficients and metrics for the learner — filtering,
 * advantages, the update plan, TIS and the policy loss — with every input error a typed failure.
 * The numerics underneath stay plain functions (`prepareUpdate`, `UpdateState`, `policyLoss`, …).
 */
import type { Trajectory } from "@workflow-r1/core";
import { Context, Effect, Layer } from "effect";
import { groupAdvantages } from "./advantages.js";
import { type AlgorithmConfig, type ResolvedAlgorithm, resolveAlgorithmConfig } from "./config.js";
import { AdvantageInputError, AlgorithmConfigError, PolicyLossInputError } from "./errors.js";
import { policyLossResolved } from "./loss.js";
import { defaultVariant } from "./registry.js";
import type { PolicyLossResult, PolicyLossTrajectory, ResolvedPolicyLoss } from "./types.js";
import {
  type MiniBatchUpdate,
  type PlanRandom,
  prepareUpdate,
  type UpdateBatch,
  UpdateState,
} from "./update.js";

/** One update in progress (see {@link AlgorithmShape.begin}). */
export interface UpdateSession {
  /** Coefficients of mini-batch `index` of the plan from the learner's current log-probabilities of its members. */
  readonly step: (
    index: number,
    logpNew: ReadonlyArray<ArrayLike<number>>,
  ) => Effect.Effect<MiniBatchUpdate, PolicyLossInputError>;
  /** The update's metrics so far (batch counts, averaged loss metrics, mismatch, entropy, advantages). */
  readonly metrics: () => Record<string, number>;
}

export interface AlgorithmShape {
  /** The config with every field settled. */
  readonly config: ResolvedAlgorithm;
  /** The loss settings after variant defaults and overrides. */
  readonly settings: ResolvedPolicyLoss;
  /** Whether an update needs the reference policy's log-probabilities (klCoef > 0). */
  readonly needsReference: boolean;
  /** Group advantages with the config's options. */
  readonly advantages: (
    rewards: ArrayLike<number>,
    groupIds: ArrayLike<number | string>,
  ) => Effect.Effect<Float64Array, AdvantageInputError>;
  /** The policy loss of one batch with the config's settings. */
  readonly loss: (
    batch: ReadonlyArray<PolicyLossTrajectory>,
  ) => Effect.Effect<PolicyLossResult, PolicyLossInputError>;
  /**
   * Step 1 of an update: the trajectories that enter it (failed episodes and, with
   * `dropUniformGroups`, groups without signal left out), their advantages, the learner sequences
   * and the plan of mini-batches (`random` shuffles the order once per epoch).
   */
  readonly prepare: (
    trajectories: ReadonlyArray<Trajectory>,
    random: PlanRandom,
  ) => Effect.Effect<UpdateBatch, AdvantageInputError>;
  /**
   * Step 2: with the learner's log-probabilities of `batch.sequences` before any optimizer step
   * (and the reference policy's when `needsReference`), start the mini-batch loop.
   */
  readonly begin: (
    batch: UpdateBatch,
    logpOld: ReadonlyArray<ArrayLike<number>>,
    logpRef?: ReadonlyArray<ArrayLike<number>>,
  ) => Effect.Effect<UpdateSession, PolicyLossInputError>;
}

// Our typed errors become failures; anything else thrown (a bug, a throwing custom segmentation or
// surrogate) stays a defect.
const attempt = <A, E>(run: () => A, isExpected: (error: unknown) => error is E): Effect.Effect<A, E> =>
  Effect.suspend(() => {
    try {
      return Effect.succeed(run());
    } catch (error) {
      if (isExpected(error)) return Effect.fail(error);
      return Effect.die(error);
    }
  });

const isLossError = (error: unknown): error is PolicyLossInputError => error instanceof PolicyLossInputError;
const isAdvantageError = (error: unknown): error is AdvantageInputError =>
  error instanceof AdvantageInputError;
const isConfigError = (error: unknown): error is AlgorithmConfigError =>
  error instanceof AlgorithmConfigError;

/**
 * Build the service value from a config (validated with the {@link AlgorithmConfig} Schema at run
 * time too: a config read from a file may hold anything). Throws {@link AlgorithmConfigError} when the config is invalid.
 */
export const makeAlgorithm = (config: AlgorithmConfig = { name: defaultVariant }): AlgorithmShape => {
  const resolved = resolveAlgorithmConfig(config);
  const settings = resolved.loss;
  return {
    config: resolved,
    settings,
    needsReference: settings.klCoef > 0,
    advantages: (rewards, groupIds) =>
      attempt(() => groupAdvantages(rewards, groupIds, resolved), isAdvantageError),
    loss: (batch) => attempt(() => policyLossResolved(batch, settings), isLossError),
    prepare: (trajectories, random) =>
      attempt(() => prepareUpdate(trajectories, resolved, random), isAdvantageError),
    begin: (batch, logpOld, logpRef) =>
      attempt(() => {
        const state = new UpdateState(resolved, batch, logpOld, logpRef);
        const session: UpdateSession = {
          step: (index, logpNew) => attempt(() => state.step(index, logpNew), isLossError),
          metrics: () => state.metrics(),
        };
        return session;
      }, isLossError),
  };
};

export class Algorithm extends Context.Service<Algorithm, AlgorithmShape>()("@workflow-r1/gsspo/Algorithm") {
  /** A layer for one config; fails with {@link AlgorithmConfigError} when a setting is invalid. */
  static layer(
    config: AlgorithmConfig = { name: defaultVariant },
  ): Layer.Layer<Algorithm, AlgorithmConfigError> {
    return Layer.effect(
      Algorithm,
      attempt(() => makeAlgorithm(config), isConfigError),
    );
  }
}
