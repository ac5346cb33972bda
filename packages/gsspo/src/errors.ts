/**
 * Typed errors of the algorithm package, all `Data.TaggedError`s: thrown by the plain functions,
 * returned as typed failures (never defects) by the `Algorithm` service and its layer.
 */
import { Data } from "effect";

/**
 * A policy-loss input or setting is invalid. `field` names what is wrong (`logpNew`, `mask`,
 * `advantage`, `clipLow`, `variant`, `batch`, …); `trajectory` is the batch index when the problem
 * is in one trajectory, `position` the token position when it is about one token.
 */
export class PolicyLossInputError extends Data.TaggedError("PolicyLossInputError")<{
  readonly message: string;
  readonly field: string;
  readonly trajectory?: number;
  readonly position?: number;
}> {}

/** A reward, group id or option given to the advantage estimator is invalid. */
export class AdvantageInputError extends Data.TaggedError("AdvantageInputError")<{
  readonly message: string;
  readonly field: string;
  /** Index of the offending trajectory (reward / group id), when it is about one. */
  readonly trajectory?: number;
}> {}

/**
 * An algorithm config (the `AlgorithmConfig` Schema: variant, loss settings, advantages, TIS,
 * filtering, update plan) is invalid. `field` names the setting (`name`, `clipLow`, `eps`,
 * `miniBatches`, …).
 */
export class AlgorithmConfigError extends Data.TaggedError("AlgorithmConfigError")<{
  readonly message: string;
  readonly field: string;
}> {}

/** What an update step of the `Algorithm` service can fail with. */
export type AlgorithmInputError = PolicyLossInputError | AdvantageInputError;
