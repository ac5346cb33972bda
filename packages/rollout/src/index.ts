/**
 * @workflow-r1/rollout — grouped multi-turn rollouts with continuous batching and crash-safe
 * trajectory logs.
 */

export { type FormatTrajectoryOptions, formatTrajectory } from "./format.js";
export {
  appendTrajectory,
  type CorruptRegion,
  type FsyncPolicy,
  readTrajectoryLog,
  readTrajectoryLogAll,
  TrajectoryLogError,
  TrajectoryLogReader,
  TrajectoryLogWriter,
  type TrajectoryLogWriterOptions,
  trajectoryLogWriter,
} from "./log.js";
export {
  EpisodeDeadlineError,
  episodeSeed,
  type RolloutMetrics,
  type RolloutOptions,
  RolloutOptionsError,
  type RolloutResult,
  type RolloutSampling,
  rollout,
  rolloutStream,
  TokenPrefixError,
  type TrajectoryGroup,
} from "./rollout.js";
