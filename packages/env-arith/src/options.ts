/**
 * Options of the arith environment: the config's `environment.options`, checked once so a typo
 * fails with the field and what was expected instead of training on a silently different task.
 */
import { EnvironmentError } from "@workflow-r1/core";
import { Effect, Schema } from "effect";

export type Operator = "+" | "-" | "*";

export const operators: ReadonlyArray<Operator> = ["+", "-", "*"];

export interface ArithOptions {
  /** Operations in the chain (1–6): an ideal episode has steps + 1 turns. Default 2. */
  readonly steps?: number;
  /** Largest start value and operand (1–99). Default 9. */
  readonly maxOperand?: number;
  /** Every intermediate result stays in [0, maxValue] (9–999). Default 99. */
  readonly maxValue?: number;
  /** Operators to draw from, a non-empty subset of `+ - *`. Default all three. */
  readonly ops?: ReadonlyArray<Operator>;
  /** Assistant turns before the episode ends with `max-turns`. Default steps + 2. */
  readonly maxTurns?: number;
  /** Tasks in the train split. Default 256. */
  readonly trainSize?: number;
  /** Tasks in the eval split. Default 64. */
  readonly evalSize?: number;
}

export type ResolvedArithOptions = Required<ArithOptions>;

/** Each integer option's range, read by both the Schema and {@link resolveOptionsSync}. */
const limits = {
  steps: [1, 6],
  maxOperand: [1, 99],
  maxValue: [9, 999],
  maxTurns: [2, 64], // and more than `steps`, checked in resolveOptionsSync
  trainSize: [1, 1_000_000],
  evalSize: [1, 1_000_000],
} as const;

const IntIn = ([minimum, maximum]: readonly [number, number]) =>
  Schema.Int.check(Schema.isBetween({ minimum, maximum }));

/**
 * {@link ArithOptions} as a Schema: the plugin's `optionsSchema`, which the trainer decodes
 * `environment.options` with before a run (unknown keys refused). The checks between fields
 * (maxValue ≥ maxOperand, maxTurns > steps, distinct ops) are {@link resolveOptionsSync}'s.
 */
export const ArithOptionsSchema = Schema.Struct({
  steps: Schema.optional(IntIn(limits.steps)),
  maxOperand: Schema.optional(IntIn(limits.maxOperand)),
  maxValue: Schema.optional(IntIn(limits.maxValue)),
  ops: Schema.optional(Schema.Array(Schema.Literals(operators))),
  maxTurns: Schema.optional(IntIn(limits.maxTurns)),
  trainSize: Schema.optional(IntIn(limits.trainSize)),
  evalSize: Schema.optional(IntIn(limits.evalSize)),
});

const integerField = (
  options: Readonly<Record<string, unknown>>,
  field: keyof typeof limits,
  fallback: number,
  min: number = limits[field][0],
  max: number = limits[field][1],
): number => {
  const value = options[field] ?? fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max)
    throw new EnvironmentError({
      message: `environment.options.${field} is ${JSON.stringify(value)}; expected an integer in [${min}, ${max}]`,
    });
  return value;
};

const known = new Set(Object.keys(ArithOptionsSchema.fields));

/** Defaults filled in; throws {@link EnvironmentError} naming the first bad field. */
export const resolveOptionsSync = (options: Readonly<Record<string, unknown>> = {}): ResolvedArithOptions => {
  if (typeof options !== "object" || options === null || Array.isArray(options))
    throw new EnvironmentError({
      message: `environment.options is ${JSON.stringify(options)}; expected an object`,
    });
  for (const key of Object.keys(options))
    if (!known.has(key))
      throw new EnvironmentError({
        message: `environment.options.${key} is not an option of arith; expected one of ${[...known].join(", ")}`,
      });
  const steps = integerField(options, "steps", 2);
  const maxOperand = integerField(options, "maxOperand", 9);
  const maxValue = integerField(options, "maxValue", 99);
  if (maxValue < maxOperand)
    throw new EnvironmentError({
      message: `environment.options.maxValue (${maxValue}) must be ≥ maxOperand (${maxOperand})`,
    });
  const ops = options["ops"] ?? operators;
  if (
    !Array.isArray(ops) ||
    ops.length === 0 ||
    !ops.every((op) => operators.includes(op)) ||
    new Set(ops).size !== ops.length
  )
    throw new EnvironmentError({
      message: `environment.options.ops is ${JSON.stringify(ops)}; expected a non-empty list of distinct "+", "-", "*"`,
    });
  return {
    steps,
    maxOperand,
    maxValue,
    ops: ops as ReadonlyArray<Operator>,
    maxTurns: integerField(options, "maxTurns", steps + 2, steps + 1),
    trainSize: integerField(options, "trainSize", 256),
    evalSize: integerField(options, "evalSize", 64),
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
