/**
 * `workflow-r1 train`: resolve the config, prepare the run directory and the model, build the
 * services (llama.cpp policy, ggml learner, environment) as Effect layers, run the loop.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ConfigError, Policy, type PolicyShape } from "@workflow-r1/core";
import { createTinyLlama } from "@workflow-r1/gguf";
import { Algorithm } from "@workflow-r1/gsspo";
import { createGgmlLearner, GgmlLearner, type LoraTarget } from "@workflow-r1/learner";
import { LlamaCppPolicy } from "@workflow-r1/policy";
import { Effect, Layer } from "effect";
import { loadAlgorithm } from "../algorithms.js";
import {
  deepMerge,
  defaultTrainConfig,
  readConfigFile,
  resolveConfig,
  type TrainConfig,
  validateConfig,
} from "../config.js";
import { resolveDevices } from "../device.js";
import { decodeEnvironmentOptions, resolveEnvironment } from "../environments.js";
import { writeFileAtomic } from "./atomic.js";
import { runPaths, summarize, trainLoop } from "./loop.js";
import type { StepMetrics } from "./metrics-log.js";
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
const configFor = (options: RunTrainOptions): TrainConfig => {
  const requested = resolveConfig({ file: options.file, overrides: options.overrides });
  if (!options.resume) return requested;
  if (!requested.out)
    throw new ConfigError({
      field: "out",
      message: "--resume needs --out DIR: the run directory to continue",
    });
  const stored = path.join(requested.out, "config.json");
  if (!fs.existsSync(stored))
    throw new ConfigError({
      field: "out",
      message: `${requested.out} has no config.json: not a workflow-r1 run directory`,
    });
  // Over the current defaults: a run stored before a field existed resumes with its default.
  let merged = deepMerge(defaultTrainConfig, readConfigFile(stored));
  if (options.file) merged = deepMerge(merged, readConfigFile(options.file));
  if (options.overrides) merged = deepMerge(merged, options.overrides);
  return validateConfig(merged, stored);
};

export const runTrain = async (options: RunTrainOptions): Promise<StepMetrics[]> => {
  const config0 = configFor(options);
  const out = config0.out || path.join("runs", timestamp());
  const config: TrainConfig = { ...config0, out };
  if (!options.resume && fs.existsSync(path.join(out, "checkpoints", "latest")))
    throw new ConfigError({
      field: "out",
      message: `${out} already holds a run; pass --resume to continue it or choose another --out`,
    });
  // Everything that can refuse the config runs before it is written: a failed `--resume` with a
  // bad override must leave the run's config.json as it was.
  const devices = resolveDevices(config.model.gpu);
  const algorithm = await loadAlgorithm(config.algorithm);
  const plugin = await resolveEnvironment(config.environment.name);
  // The run directory keeps the options as written; the environment gets them decoded.
  const environmentOptions = decodeEnvironmentOptions(plugin, config.environment.options);
  fs.mkdirSync(out, { recursive: true });
  writeFileAtomic(path.join(out, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
  let modelPath = config.model.path;
  if (!modelPath) {
    modelPath = path.join(out, "model-init.gguf");
    if (!fs.existsSync(modelPath)) {
      const { merges, ...shape } = config.model.tiny;
      await createTinyLlama({
        path: modelPath,
        seed: config.seed,
        ...shape,
        ...(merges !== undefined && { tokenizer: { merges } }),
      });
    }
  }
  const weightsKind = config.learner.mode === "lora" ? "lora" : "gguf";
  const paths = runPaths(out, weightsKind);
  process.stderr.write(`[train] ${config.algorithm.name} on ${plugin.name} → ${out} (model ${modelPath})\n`);

  const basePolicy = LlamaCppPolicy.layer({
    modelPath,
    gpu: devices.policy,
    contextSize: config.model.contextSize,
    sequences: config.rollout.maxConcurrentEpisodes,
    threads: config.model.threads,
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
  const learner = GgmlLearner.layer({
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
  });
  const environment = plugin.layer(environmentOptions);
  // The KL term needs the initial model's logprobs: a second, frozen learner on the starting GGUF.
  const reference = algorithm.needsReference
    ? createGgmlLearner({
        modelPath,
        gpu: devices.learner,
        threads: config.learner.threads,
        microBatchTokens: config.learner.microBatchTokens,
      })
    : undefined;
  const loopConfig: TrainConfig = {
    ...config,
    environment: { ...config.environment, options: environmentOptions },
  };
  const program = trainLoop({
    config: loopConfig,
    plugin,
    paths,
    weightsKind,
    reference,
    onStep: options.onStep,
  }).pipe(
    Effect.scoped,
    Effect.provide(Layer.mergeAll(policy, learner, environment, Layer.succeed(Algorithm, algorithm))),
  );
  const rows = await Effect.runPromise(program).finally(() => reference?.dispose());
  const summary = summarize(rows);
  const heldOut =
    summary.evalAccuracyStart === undefined || summary.evalAccuracyEnd === undefined
      ? ""
      : `, eval accuracy ${summary.evalAccuracyStart.toFixed(3)} → ${summary.evalAccuracyEnd.toFixed(3)}`;
  process.stderr.write(
    `[train] done: ${summary.steps} steps; reward ${summary.rewardStart.toFixed(3)} → ${summary.rewardEnd.toFixed(3)} ` +
      `(mean of the first → last quarter of steps)${heldOut}\n` +
      `[train] metrics ${paths.metrics}, dashboard ${paths.dashboard}\n`,
  );
  return rows;
};
