/**
 * workflow-r1 — the training loop and the `workflow-r1` command as a library.
 *
 * - `train(options)`: one training run from a config file and overrides, exactly what
 *   `workflow-r1 train` does (run directory, checkpoints, `--resume`), as an Effect over the
 *   platform `FileSystem` service; `runTrain(options)` runs it on Node and resolves to every step's
 *   metrics.
 * - `trainLoop(options)`: the loop itself as an Effect over the `Policy`, `Learner`, `Environment`
 *   and `FileSystem` services, for programs that bring their own services.
 * - `compare(options)` / `runCompare(options)`: `workflow-r1 compare` (algorithms × seeds, the table).
 * - `loadConfig`, `defaultTrainConfig`, `TrainConfig`: the Schema-validated config.
 */
export {
  AlgorithmConfig,
  defaultTrainConfig,
  EnvironmentConfig,
  LearnerConfig,
  loadConfig,
  ModelConfig,
  RolloutConfig,
  TrainConfig,
  WarmStartConfig,
} from "./config.js";
export {
  type CompareOptions,
  type CompareRow,
  CompareRunError,
  compare,
  compareTable,
  runCompare,
} from "./train/compare.js";
export { type RunPaths, runPaths, summarize, type TrainLoopOptions, trainLoop } from "./train/loop.js";
export type { StepMetrics } from "./train/metrics-log.js";
export { type RunTrainOptions, runTrain, train } from "./train/run.js";
