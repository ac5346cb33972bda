/**
 * The training configuration: one Schema-validated object. A config file (JSON or YAML) and
 * command-line flags are deep-merged over the embedded default, then the whole result is
 * validated, so every error names the field (and file) it came from.
 */
import * as path from "node:path";
import { ConfigError } from "@workflow-r1/core";
import { AlgorithmConfig } from "@workflow-r1/gsspo";
import { Effect, FileSystem, Schema } from "effect";
import * as YAML from "yaml";

const Positive = Schema.Number.check(Schema.isGreaterThan(0));
const NonNegative = Schema.Number.check(Schema.isGreaterThanOrEqualTo(0));
const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1));
const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0));
const Probability = Schema.Number.check(Schema.isBetween({ minimum: 0, maximum: 1 }));

export const TinyModelConfig = Schema.Struct({
  dim: PositiveInt,
  layers: PositiveInt,
  heads: PositiveInt,
  kvHeads: PositiveInt,
  ffn: PositiveInt,
  context: PositiveInt,
  /**
   * Byte-pair merges of the tokenizer (0 = one token per byte). Byte-level names tokenize the same
   * wherever they appear, so copying a name from an observation is copying its bytes.
   */
  merges: Schema.optional(NonNegativeInt),
});

export const ModelConfig = Schema.Struct({
  /** A GGUF path (or `hf:` URI) to start from. Empty: create a tiny model in the run directory. */
  path: Schema.String,
  tiny: TinyModelConfig,
  gpu: Schema.Union([Schema.Literal(false), Schema.Literals(["auto", "cuda", "vulkan"])]),
  contextSize: PositiveInt,
  threads: PositiveInt,
  /** KV cache precision of the sampler: f32 keeps sampler and learner logprobs within 1e-3. */
  kvCacheType: Schema.Literals(["f32", "f16"]),
  /** The sampler's decode loop: `native` (C++ over libllama) or `node-llama-cpp` (the fallback, e.g. Vulkan). */
  engine: Schema.Literals(["native", "node-llama-cpp"]),
});

export const EnvironmentConfig = Schema.Struct({
  /** `synthetic` (no LLM, learnable by a tiny model), `workflow-r1` (the paper's QA environment), or a registered name. */
  name: Schema.String,
  /** Options passed to the environment (see the environment's README). */
  options: Schema.Record(Schema.String, Schema.Unknown),
});

/**
 * `algorithm:` is @workflow-r1/gsspo's own config Schema, embedded as is: the variant and its loss
 * settings, advantages, group filtering, truncated importance sampling (`tisCap`) and the update
 * plan (`ppoEpochs` × `miniBatches`). See the gsspo README.
 */
export { AlgorithmConfig };

/** Keys that moved from `learner` to `algorithm` (the update plan is the algorithm's). */
const movedToAlgorithm = ["ppoEpochs", "miniBatches"] as const;

/** llama.cpp's LLAMA_MAX_SEQ: sequences one context holds. */
export const MAX_POLICY_SEQUENCES = 256;

export const RolloutConfig = Schema.Struct({
  tasksPerStep: PositiveInt,
  groupSize: PositiveInt,
  /**
   * Episodes sampled at once: one llama.cpp sequence each, and llama.cpp keeps at most 256
   * sequences in one context (LLAMA_MAX_SEQ), so more would stop the policy at load.
   */
  maxConcurrentEpisodes: PositiveInt.check(
    Schema.makeFilter(
      (n: number) =>
        n <= MAX_POLICY_SEQUENCES ||
        `at most ${MAX_POLICY_SEQUENCES}: llama.cpp keeps at most ${MAX_POLICY_SEQUENCES} sequences in one context (more episodes still run, ${MAX_POLICY_SEQUENCES} at a time)`,
    ),
  ),
  maxTurns: PositiveInt,
  maxTokens: PositiveInt,
  /** Sampled tokens per turn (default: what is left of maxTokens). */
  maxTokensPerTurn: Schema.optional(PositiveInt),
  temperature: Positive,
});

export const LearnerConfig = Schema.Struct({
  mode: Schema.Literals(["full", "lora"]),
  learningRate: Positive,
  beta1: Probability,
  beta2: Probability,
  eps: Positive,
  weightDecay: NonNegative,
  gradClip: Positive,
  loraRank: PositiveInt,
  loraAlpha: Positive,
  loraTargets: Schema.Array(Schema.String),
  microBatchTokens: PositiveInt,
  threads: PositiveInt,
});

export const WarmStartConfig = Schema.Struct({
  /** Supervised steps on environment demonstrations before RL (0 = none). */
  steps: NonNegativeInt,
  learningRate: Positive,
  batchSize: PositiveInt,
  /** Warm-start steps between checkpoints (a run killed during the warm start resumes from the last). */
  checkpointEvery: PositiveInt,
});

export const TrainConfig = Schema.Struct({
  seed: Schema.Int,
  /** Output directory; empty = runs/<timestamp>. */
  out: Schema.String,
  steps: PositiveInt,
  evalEvery: NonNegativeInt,
  evalTasks: NonNegativeInt,
  /** Sampling temperature of the held-out evaluation; 0 = greedy (the default). */
  evalTemperature: NonNegative,
  checkpointEvery: PositiveInt,
  model: ModelConfig,
  environment: EnvironmentConfig,
  algorithm: AlgorithmConfig,
  rollout: RolloutConfig,
  learner: LearnerConfig,
  warmStart: WarmStartConfig,
});
export type TrainConfig = typeof TrainConfig.Type;

/** The embedded default: a tiny model learning the synthetic QA environment with GSsPO on CPU. */
export const defaultTrainConfig: TrainConfig = {
  seed: 1,
  out: "",
  steps: 60,
  evalEvery: 10,
  evalTasks: 64,
  evalTemperature: 0,
  checkpointEvery: 5,
  model: {
    path: "",
    tiny: { dim: 64, layers: 2, heads: 4, kvHeads: 2, ffn: 192, context: 1024 },
    gpu: false,
    contextSize: 1024,
    threads: 1,
    kvCacheType: "f32",
    engine: "native",
  },
  environment: { name: "synthetic", options: {} },
  algorithm: {
    name: "gsspo",
    klCoef: 0,
    klEstimator: "k3",
    normalizeByStd: true,
    tisCap: null,
    dropUniformGroups: true,
    ppoEpochs: 1,
    miniBatches: 4,
  },
  rollout: {
    tasksPerStep: 8,
    groupSize: 8,
    maxConcurrentEpisodes: 64,
    maxTurns: 4,
    maxTokens: 160,
    temperature: 1,
  },
  learner: {
    mode: "full",
    learningRate: 3e-4,
    beta1: 0.9,
    beta2: 0.99,
    eps: 1e-8,
    weightDecay: 0,
    gradClip: 1,
    loraRank: 8,
    loraAlpha: 16,
    loraTargets: ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"],
    microBatchTokens: 8192,
    threads: 2,
  },
  warmStart: { steps: 300, learningRate: 3e-3, batchSize: 16, checkpointEvery: 50 },
};

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** Deep merge of plain objects; arrays and scalars in `override` replace those in `base`. */
export const deepMerge = (base: unknown, override: unknown): unknown => {
  if (!isPlainObject(base) || !isPlainObject(override)) return override === undefined ? base : override;
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) out[key] = deepMerge(base[key], value);
  return out;
};

/** Set `a.b.c` in a nested object from a `--set a.b.c=value` flag; the value is parsed as YAML. */
export const setPath = (target: Record<string, unknown>, dotted: string, raw: string): void => {
  const keys = dotted.split(".");
  let node: Record<string, unknown> = target;
  for (const key of keys.slice(0, -1)) {
    if (!isPlainObject(node[key])) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keys[keys.length - 1]!] = YAML.parse(raw) as Json;
};

const decodeConfig = Schema.decodeUnknownSync(TrainConfig, { onExcessProperty: "error", errors: "all" });

/**
 * `learner.ppoEpochs` / `learner.miniBatches` (configs written before the update plan moved to the
 * algorithm) are read as `algorithm.ppoEpochs` / `algorithm.miniBatches`. Merged over the default,
 * the algorithm's key holds its default unless a file or flag set it: a legacy key wins over the
 * default; one that disagrees with an explicitly set algorithm key is an error naming both.
 */
export const moveLegacyKeys = (value: unknown, file?: string): unknown => {
  if (!isPlainObject(value) || !isPlainObject(value["learner"])) return value;
  const learner = { ...value["learner"] };
  const algorithm: Record<string, unknown> = isPlainObject(value["algorithm"])
    ? { ...value["algorithm"] }
    : {};
  let moved = false;
  for (const key of movedToAlgorithm) {
    if (!(key in learner)) continue;
    const legacy = learner[key];
    const current = algorithm[key];
    if (current !== undefined && current !== defaultTrainConfig.algorithm[key] && current !== legacy)
      throw new ConfigError({
        field: `learner.${key}`,
        message: `learner.${key} moved to algorithm.${key}; the config sets both (learner.${key}: ${JSON.stringify(legacy)}, algorithm.${key}: ${JSON.stringify(current)}): keep only algorithm.${key}${file ? ` (in ${file})` : ""}`,
        file,
      });
    algorithm[key] = legacy;
    delete learner[key];
    moved = true;
  }
  return moved ? { ...value, learner, algorithm } : value;
};

/** Validate a merged config object; the error names every offending field. */
export const validateConfig = (value: unknown, file?: string): Effect.Effect<TrainConfig, ConfigError> =>
  Effect.try({
    try: () => decodeConfig(moveLegacyKeys(value, file)),
    catch: (error) =>
      error instanceof ConfigError
        ? error
        : new ConfigError({
            message: `invalid training config${file ? ` in ${file}` : ""}:\n${String(error instanceof Error ? error.message : error)}`,
            file,
          }),
  });

/** Read a JSON or YAML config file (by extension; YAML is a superset of JSON). */
export const readConfigFile = (file: string) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem;
    const text = yield* fs
      .readFileString(file)
      .pipe(
        Effect.mapError(
          (error) => new ConfigError({ message: `cannot read config file ${file}: ${error.message}`, file }),
        ),
      );
    return yield* Effect.try({
      try: (): unknown => (path.extname(file) === ".json" ? JSON.parse(text) : YAML.parse(text)),
      catch: (error) =>
        new ConfigError({ message: `cannot parse config file ${file}: ${(error as Error).message}`, file }),
    });
  });

/** The effective config: default ← file ← overrides, validated. */
export const loadConfig = (
  options: { readonly file?: string | undefined; readonly overrides?: unknown } = {},
) =>
  Effect.gen(function* () {
    let merged: unknown = defaultTrainConfig;
    if (options.file) merged = deepMerge(merged, yield* readConfigFile(options.file));
    if (options.overrides) merged = deepMerge(merged, options.overrides);
    return yield* validateConfig(merged, options.file);
  });
