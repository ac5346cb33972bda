/**
 * @workflow-r1/core — the contracts every workflow-r1 package shares.
 */

export { TrajectoryBuilder } from "./builder.js";
export { decodeTrajectory, encodeTrajectory, packr } from "./codec.js";
export * from "./errors.js";
export { mulberry32, Random, type RandomAlgorithm, shuffled } from "./random.js";
export { segmentCount, segmentsFromMask } from "./segments.js";
export * from "./services.js";
export {
  type BootstrapOptions,
  bootstrapMean,
  type Estimate,
  mean,
  quantileSorted,
  sampleStd,
} from "./stats.js";
export type { FinishReason, OperatorCall, Trajectory, Turn } from "./trajectory.js";
export { validateTrajectory } from "./validate.js";
