/**
 * `workflow-r1 train`: resolve the config, prepare the run directory and the model, build the
 * services (llama.cpp policy, ggml learner, environment) as Effect layers, run the loop. `train` is
 * the Effect (over the platform `FileSystem` service); `runTrain` runs it on Node for callers that
 * want a Promise.
 */
import * as path from "node:path";
import { NodeFileSystem } from "@effect/platform-node";
import {
  ConfigError,
  Learner,
  type LearnerShape,
  ModelLoadError,
  Policy,
  type PolicyShape,
} from "@workflow-r1/core";
import { createTinyLlama } from "@workflow-r1/gguf";
import { Algorithm } from "@workflow-r1/gsspo";
import {
  GgmlLearner,
  type GgmlLearnerConfig,
  type GgmlLearnerShape,
  type LoraTarget,
} from "@workflow-r1/learner";
import { LlamaCppPolicy, resolveModelPath } from "@workflow-r1/policy";
import { Effect, FileSystem, Layer } from "effect";
import { loadAlgorithm } from "../algorithms.js";
import {
  deepMerge,
  defaultTrainConfig,
  loadConfig,
  readConfigFile,
  type TrainConfig,
  validateConfig,
} from "../config.js";
import { resolveDevices } from "../device.js";
import { decodeEnvironmentOptions, resolveEnvironment } from "../environments.js";
import { writeFileAtomic } from "./atomic.js";
import { runPaths, summarize, trainLoop } from "./loop.js";
import type { StepMetrics } from "./metrics-log.js";
import { checkTrainableModel } from "./model-check.js";
import { learningRateSchedule } from "./warm-start.js";

export interface RunTrainOptions {
  readonly file?: string;
  readonly overrides?: unknown;
  /** Continue the run in `out` from its last complete checkpoint. */
  readonly resume?: boolean;
  readonly onStep?: (metrics: StepMetrics) => void;
  /** Wraps the policy service (instrumentation; tests simulate a reload that keeps old weights). */
  readonly wrapPolicy?: (policy: PolicyShape) => PolicyShape;
}

const timestamp = () => new Date().toISOString().replace(/[:.]/g, "-").replace("T", "_").slice(0, 19);

/** On resume the stored config is the base; file and flags may still change e.g. `steps`. */
const configFor = (options: RunTrainOptions) =>
  Effect.gen(function* () {
    const requested = yield* loadConfig({ file: options.file, overrides: options.overrides });
    if (!options.resume) return requested;
    if (!requested.out)
      return yield* new ConfigError({
        field: "out",
        message: "--resume needs --out DIR: the run directory to continue",
      });
    const fs = yield* FileSystem.FileSystem;
    const stored = path.join(requested.out, "config.json");
    if (!(yield* fs.exists(stored)))
      return yield* new ConfigError({
        field: "out",
        message: `${requested.out} has no config.json: not a workflow-r1 run directory`,
      });
    // Over the current defaults: a run stored before a field existed resumes with its default.
    let merged = deepMerge(defaultTrainConfig, yield* readConfigFile(stored));
    if (options.file) merged = deepMerge(merged, yield* readConfigFile(options.file));
    if (options.overrides) merged = deepMerge(merged, options.overrides);
    return yield* validateConfig(merged, stored);
  });

/** Train as configured; the metrics rows of the run (step 0's evaluation, then one per RL step). */
export const train = (options: RunTrainOptions) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem;
    const config0 = yield* configFor(options);
    const out = config0.out || path.join("runs", timestamp());
    const config: TrainConfig = { ...config0, out };
    if (!options.resume && (yield* fs.exists(path.join(out, "checkpoints", "latest"))))
      return yield* new ConfigError({
        field: "out",
        message: `${out} already holds a run; pass --resume to continue it or choose another --out`,
      });
    // Everything that can refuse the config runs before it is written: a failed `--resume` with a
    // bad override must leave the run's config.json as it was.
    const devices = yield* resolveDevices(config.model.gpu);
    const algorithm = yield* loadAlgorithm(config.algorithm);
    const plugin = yield* resolveEnvironment(config.environment.name);
    // The run directory keeps the options as written; the environment gets them decoded.
    const environmentOptions = yield* decodeEnvironmentOptions(plugin, config.environment.options);
    // An hf: URI is resolved here, once: the policy and the learner then open the same local file,
    // and a model the learner cannot train is refused before anything is loaded or written.
    let modelPath = config.model.path ? yield* resolveModelPath(config.model.path) : "";
    if (modelPath) yield* checkTrainableModel(modelPath);
    yield* fs.makeDirectory(out, { recursive: true });
    yield* writeFileAtomic(path.join(out, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
    if (!modelPath) {
      const initial = path.join(out, "model-init.gguf");
      modelPath = initial;
      if (!(yield* fs.exists(initial))) {
        const { merges, ...shape } = config.model.tiny;
        yield* Effect.tryPromise({
          try: () =>
            createTinyLlama({
              path: initial,
              seed: config.seed,
              ...shape,
              ...(merges !== undefined && { tokenizer: { merges } }),
            }),
          catch: (cause) =>
            new ModelLoadError({
              path: initial,
              message: `cannot write the starting tiny model ${initial}: ${(cause as Error).message}`,
              cause,
            }),
        });
      }
    }
    const weightsKind = config.learner.mode === "lora" ? "lora" : "gguf";
    const paths = runPaths(out, weightsKind);
    yield* Effect.sync(() =>
      process.stderr.write(
        `[train] ${config.algorithm.name} on ${plugin.name} → ${out} (model ${modelPath})\n`,
      ),
    );

    const basePolicy = LlamaCppPolicy.layer({
      modelPath,
      gpu: devices.policy,
      contextSize: config.model.contextSize,
      sequences: config.rollout.maxConcurrentEpisodes,
      threads: config.model.threads,
      engine: config.model.engine,
      ...(config.model.kvCacheType === "f32" && { kvCacheType: "F32" as const }),
    });
    const wrap = options.wrapPolicy;
    const policy = wrap
      ? Layer.effect(
          Policy,
          Effect.gen(function* () {
            return wrap(yield* Policy);
          }),
        ).pipe(Layer.provide(basePolicy))
      : basePolicy;
    // The learner is opened through `make` so that the run can read its memory report at the end and,
    // under LoRA, use its base (adapter off) as the KL reference.
    let ggmlLearner: GgmlLearnerShape | undefined;
    const learnerConfig: GgmlLearnerConfig = {
      modelPath,
      threads: config.learner.threads,
      gpu: devices.learner,
      seed: config.seed,
      microBatchTokens: config.learner.microBatchTokens,
      ...(config.learner.mode === "lora" && {
        lora: {
          rank: config.learner.loraRank,
          alpha: config.learner.loraAlpha,
          targets: config.learner.loraTargets as ReadonlyArray<LoraTarget>,
        },
      }),
      optimizer: {
        learningRate: config.learner.learningRate,
        beta1: config.learner.beta1,
        beta2: config.learner.beta2,
        eps: config.learner.eps,
        weightDecay: config.learner.weightDecay,
        maxGradNorm: config.learner.gradClip,
        schedule: learningRateSchedule(config, plugin),
      },
    };
    const learner = Layer.effect(
      Learner,
      Effect.tap(GgmlLearner.make(learnerConfig), (l) =>
        Effect.sync(() => {
          ggmlLearner = l;
        }),
      ),
    );
    const environment = plugin.layer(environmentOptions);
    const loopConfig: TrainConfig = {
      ...config,
      environment: { ...config.environment, options: environmentOptions },
    };
    const rows = yield* Effect.gen(function* () {
      // The KL term needs the starting model's logprobs. LoRA: the learner's own base without the
      // adapter (no second model). Full fine-tuning: a frozen, inference-only learner on the starting
      // GGUF (F32 weights, no gradients or moments), freed with the run's scope.
      const reference: LearnerShape | undefined = !algorithm.needsReference
        ? undefined
        : config.learner.mode === "lora" && ggmlLearner !== undefined
          ? { ...ggmlLearner, logprobs: ggmlLearner.baseLogprobs }
          : yield* GgmlLearner.make({
              modelPath,
              gpu: devices.learner,
              threads: config.learner.threads,
              microBatchTokens: config.learner.microBatchTokens,
              frozen: true,
            });
      return yield* trainLoop({
        config: loopConfig,
        plugin,
        paths,
        weightsKind,
        reference,
        onStep: options.onStep,
        learnerMemory: () => ggmlLearner?.info().memory,
      });
    }).pipe(
      Effect.scoped,
      Effect.provide(Layer.mergeAll(policy, learner, environment, Layer.succeed(Algorithm, algorithm))),
    );
    const summary = summarize(rows);
    const heldOut =
      summary.evalAccuracyStart === undefined || summary.evalAccuracyEnd === undefined
        ? ""
        : `, eval accuracy ${summary.evalAccuracyStart.toFixed(3)} → ${summary.evalAccuracyEnd.toFixed(3)}`;
    yield* Effect.sync(() =>
      process.stderr.write(
        `[train] done: ${summary.steps} steps; reward ${summary.rewardStart.toFixed(3)} → ${summary.rewardEnd.toFixed(3)} ` +
          `(mean of the first → last quarter of steps)${heldOut}\n` +
          `[train] metrics ${paths.metrics}, dashboard ${paths.dashboard}\n`,
      ),
    );
    return rows;
  });

/** {@link train} on Node's file system, as a Promise (rejects with the run's typed error). */
export const runTrain = (options: RunTrainOptions): Promise<StepMetrics[]> =>
  Effect.runPromise(train(options).pipe(Effect.provide(NodeFileSystem.layer)));
