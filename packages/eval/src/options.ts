/**
 * The eval command's options as a Schema: what a caller (the CLI or code) passes is decoded before
 * anything is loaded, so a misspelt option or a bad value fails with its name, the way the
 * trainer's config and the environments' options do.
 */
import { Effect, Schema } from "effect";
import type { EvalCommandOptions } from "./command.js";
import { EvaluationError } from "./errors.js";

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1));
const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0));
const NonNegative = Schema.Number.check(Schema.isGreaterThanOrEqualTo(0));
/** A comma-separated string or a list of names. */
const NameList = Schema.Union([Schema.String, Schema.Array(Schema.String)]);

/** Every option of `evalCommand` but the output stream (see {@link EvalCommandOptions} for each). */
export const EvalOptions = Schema.Struct({
  data: Schema.String,
  benchmarks: Schema.optional(NameList),
  method: NameList,
  model: Schema.optional(Schema.String),
  answerer: Schema.optional(Schema.Literals(["policy", "executor"])),
  maxEpisodeTokens: Schema.optional(PositiveInt),
  trainRun: Schema.optional(Schema.String),
  allowTrainOverlap: Schema.optional(Schema.Boolean),
  executorUrl: Schema.optional(Schema.String),
  executorModel: Schema.optional(Schema.String),
  executorLocal: Schema.optional(Schema.NonEmptyString),
  corpus: Schema.optional(Schema.String),
  retrieverUrl: Schema.optional(Schema.String),
  operators: Schema.optional(NameList),
  operatorBudget: Schema.optional(NonNegativeInt),
  limit: Schema.optional(PositiveInt),
  samples: Schema.optional(PositiveInt),
  out: Schema.optional(Schema.String),
  concurrency: Schema.optional(PositiveInt),
  maxTokens: Schema.optional(PositiveInt),
  maxTurns: Schema.optional(PositiveInt),
  temperature: Schema.optional(NonNegative),
  seed: Schema.optional(Schema.Int),
  contextSize: Schema.optional(PositiveInt),
  gpu: Schema.optional(Schema.Union([Schema.Literal(false), Schema.Literals(["auto", "cuda", "vulkan"])])),
  threads: Schema.optional(PositiveInt),
  progress: Schema.optional(Schema.Literals(["auto", "bar", "lines", "none"])),
});

// The Schema and the documented interface name the same fields with the same types.
type Decoded = typeof EvalOptions.Type;
type Documented = Omit<EvalCommandOptions, "stream">;
const _sameFields: [Exclude<keyof Decoded, keyof Documented>, Exclude<keyof Documented, keyof Decoded>] = [
  undefined as never,
  undefined as never,
];
const _decodedIsDocumented = (decoded: Decoded): Documented => decoded;
const _documentedIsDecoded = (documented: Documented): Decoded => documented;
void _sameFields;
void _decodedIsDocumented;
void _documentedIsDecoded;

const decode = Schema.decodeUnknownSync(EvalOptions, { onExcessProperty: "error", errors: "all" });

/**
 * The options decoded: an unknown option or a bad value is an EvaluationError naming it. The output
 * stream (not data) passes through as given.
 */
export const decodeEvalOptions = (
  options: EvalCommandOptions,
): Effect.Effect<EvalCommandOptions, EvaluationError> => {
  const { stream, ...rest } = options;
  return Effect.try({
    try: (): EvalCommandOptions => ({ ...decode(rest), ...(stream !== undefined && { stream }) }),
    catch: (error) =>
      new EvaluationError({
        message: `invalid eval options:\n${error instanceof Error ? error.message : String(error)}`,
        field: "options",
      }),
  });
};
