/**
 * workflow-r1 — the training loop and the `workflow-r1` command as a library.
 *
 * - `runTrain(options)`: one training run from a config file and overrides, exactly what
 *   `workflow-r1 train` does (run directory, checkpoints, `--resume`), resolving to every step's metrics.
 * - `trainLoop(options)`: the loop itself as an Effect over the `Policy` and `Learner` services, for
 *   programs that bring their own services.
 * - `runCompare(options)`: `workflow-r1 compare` (algorithms × seeds, the table).
 * - `resolveConfig`, `defaultTrainConfig`, `TrainConfig`: the Schema-validated config.
 */
export {
  AlgorithmConfig,
  defaultTrainConfig,
  EnvironmentConfig,
  LearnerConfig,
  ModelConfig,
  RolloutConfig,
  resolveConfig,
  TrainConfig,
  WarmStartConfig,
} from "./config.js";
export { type CompareOptions, type CompareRow, compareTable, runCompare } from "./train/compare.js";
export { type RunPaths, runPaths, summarize, type TrainLoopOptions, trainLoop } from "./train/loop.js";
export type { StepMetrics } from "./train/metrics-log.js";
export { type RunTrainOptions, runTrain } from "./train/run.js";
