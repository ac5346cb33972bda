/**
 * @workflow-r1/env-qa — the Workflow-R1 QA environment: protocol, operators, executors, search,
 * datasets, reward and metrics. The public API is listed here; helpers behind it (tag scanners,
 * Python-compatible string functions, transport details) stay internal.
 */
export * from "./datasets/index.js";
export { type EpisodeSettings, makeEpisode } from "./episode.js";
export * from "./executors/index.js";
export { exactMatch, f1Score, normalizeAnswer, subExactMatch } from "./metrics.js";
export {
  defaultExecutorSettings,
  type ExecutorSettings,
  isOperatorName,
  OPERATOR_NAMES,
  type Operator,
  type OperatorContext,
  type OperatorName,
  operators,
  PAPER_OPERATORS,
} from "./operators.js";
export {
  buildPrompt,
  FORMAT_WARNING,
  type OperatorDescription,
  type ParsedTurn,
  type PromptOptions,
  parseTurn,
  SYSTEM_PROMPT,
  stopSequences,
} from "./protocol.js";
export * from "./retrieval/index.js";
export {
  answerScore,
  extractAnswer,
  formatScore,
  type RewardParts,
  rewardParts,
  workflowR1Reward,
} from "./reward.js";
export {
  checkEnvExecutor,
  defaultMaxConsecutiveFailures,
  type EnvExecutorSettings,
  ensureExecutorAvailable,
  executorMetrics,
  executorStatsOf,
  needsRetriever,
  type ResolvedWorkflowR1EnvConfig,
  resolveWorkflowR1EnvConfig,
  WorkflowR1Env,
  type WorkflowR1EnvConfig,
  type WorkflowR1EnvShape,
} from "./workflow-r1-env.js";
export {
  DEFAULT_EVAL_DATASETS,
  DEFAULT_TRAIN_DATASETS,
  type WorkflowR1PluginOptions,
  WorkflowR1PluginOptionsSchema,
  workflowR1Plugin,
} from "./workflow-r1-plugin.js";
