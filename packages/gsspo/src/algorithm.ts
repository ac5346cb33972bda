/**
 * The Effect boundary: an `Algorithm` service built from one config, whose `advantages` and `loss`
 * are Effects that fail with the typed input errors. The numerics underneath stay plain functions.
 */
import { Context, Effect, Layer } from "effect";
import { type GroupAdvantageOptions, groupAdvantages } from "./advantages.js";
import { AdvantageInputError, PolicyLossInputError } from "./errors.js";
import { policyLossResolved } from "./loss.js";
import { resolvePolicyLoss } from "./registry.js";
import type {
  PolicyLossConfig,
  PolicyLossResult,
  PolicyLossTrajectory,
  ResolvedPolicyLoss,
} from "./types.js";

/** Loss settings and advantage options in one place, as a training config holds them. */
export interface AlgorithmConfig extends PolicyLossConfig, GroupAdvantageOptions {}

export interface AlgorithmShape {
  /** The loss settings after variant defaults and overrides. */
  readonly settings: ResolvedPolicyLoss;
  readonly advantages: (
    rewards: ArrayLike<number>,
    groupIds: ArrayLike<number | string>,
  ) => Effect.Effect<Float64Array, AdvantageInputError>;
  readonly loss: (
    batch: ReadonlyArray<PolicyLossTrajectory>,
  ) => Effect.Effect<PolicyLossResult, PolicyLossInputError>;
}

// Our typed errors become failures; anything else thrown (a bug, a throwing custom segmentation)
// stays a defect.
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
const isConfigError = (error: unknown): error is PolicyLossInputError | AdvantageInputError =>
  isLossError(error) || isAdvantageError(error);

/** Build the service value; throws a typed error when the config is invalid. */
export const makeAlgorithm = (config: AlgorithmConfig = {}): AlgorithmShape => {
  const settings = resolvePolicyLoss(config);
  const options: GroupAdvantageOptions = { normalizeByStd: config.normalizeByStd, eps: config.eps };
  groupAdvantages([], [], options); // validates eps now rather than at the first step
  return {
    settings,
    advantages: (rewards, groupIds) =>
      attempt(() => groupAdvantages(rewards, groupIds, options), isAdvantageError),
    loss: (batch) => attempt(() => policyLossResolved(batch, settings), isLossError),
  };
};

export class Algorithm extends Context.Service<Algorithm, AlgorithmShape>()("@workflow-r1/gsspo/Algorithm") {
  /** A layer for one config; fails with the typed error when a setting is invalid. */
  static layer(
    config: AlgorithmConfig = {},
  ): Layer.Layer<Algorithm, PolicyLossInputError | AdvantageInputError> {
    return Layer.effect(
      Algorithm,
      attempt(() => makeAlgorithm(config), isConfigError),
    );
  }
}
