/**
 * Options of the arith environment: the config's `environment.options`, checked once so a typo
 * fails with the field and what was expected instead of training on a silently different task.
 */
import { EnvironmentError } from "@workflow-r1/core";
import { Effect } from "effect";

export interface ArithOptions {
  /** Keys to follow before reaching the value (≥ 1): the episode needs hops + 1 turns. Default 2. */
  readonly hops?: number;
  /** Assistant turns before the episode ends with `max-turns`. Default hops + 2. */
  readonly maxTurns?: number;
  /** Tasks in the train split. Default 256. */
  readonly trainSize?: number;
  /** Tasks in the eval split. Default 64. */
  readonly evalSize?: number;
}

export type ResolvedArithOptions = Required<ArithOptions>;

const integerField = (
  options: Readonly<Record<string, unknown>>,
  field: string,
  fallback: number,
  min: number,
  max: number,
): number => {
  const value = options[field] ?? fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max)
    throw new EnvironmentError({
      message: `environment.options.${field} is ${JSON.stringify(value)}; expected an integer in [${min}, ${max}]`,
    });
  return value;
};

const known = new Set(["hops", "maxTurns", "trainSize", "evalSize"]);

/** Defaults filled in; throws {@link EnvironmentError} naming the first bad field. */
export const resolveOptionsSync = (options: Readonly<Record<string, unknown>> = {}): ResolvedArithOptions => {
  for (const key of Object.keys(options))
    if (!known.has(key))
      throw new EnvironmentError({
        message: `environment.options.${key} is not an option of arith; expected one of ${[...known].join(", ")}`,
      });
  const hops = integerField(options, "hops", 2, 1, 8);
  return {
    hops,
    maxTurns: integerField(options, "maxTurns", hops + 2, hops + 1, 64),
    trainSize: integerField(options, "trainSize", 256, 1, 1_000_000),
    evalSize: integerField(options, "evalSize", 64, 1, 1_000_000),
  };
};

export const resolveOptions = (
  options: Readonly<Record<string, unknown>> = {},
): Effect.Effect<ResolvedArithOptions, EnvironmentError> =>
  Effect.try({
    try: () => resolveOptionsSync(options),
    catch: (error) =>
      error instanceof EnvironmentError
        ? error
        : new EnvironmentError({ message: String(error), cause: error }),
  });
