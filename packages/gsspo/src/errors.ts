/**
 * Typed errors of the algorithm package. Both are `Data.TaggedError`s: thrown by the plain
 * functions, returned as typed failures by the {@link Algorithm} service.
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
