export { ExecutorUnavailableError, ExecutorUnreachableError } from "./errors.js";
export {
  ChatCompletionResponse,
  HttpExecutor,
  type HttpExecutorConfig,
  type HttpExecutorShape,
  httpExecutorDefaults,
  isProbeableExecutor,
  probeHttpExecutor,
  type ResolvedHttpExecutorConfig,
  resolveHttpExecutorConfig,
} from "./http.js";
export {
  LocalExecutor,
  type LocalExecutorConfig,
  localSamplingOptions,
  makeLocalExecutor,
} from "./local.js";
export {
  checkGgufFile,
  LocalModelExecutor,
  type LocalModelExecutorConfig,
  type LocalModelExecutorShape,
  type LocalModelExecutorSource,
  localModelExecutorDefaults,
} from "./local-model.js";
export {
  type ExecutorCounts,
  type ExecutorMonitor,
  type ExecutorMonitorOptions,
  type ExecutorStats,
  executorUrl,
  monitorExecutor,
} from "./monitor.js";
export {
  decodeExecutorOptions,
  EXECUTOR_KINDS,
  ExecutorOptionSchema,
  type ExecutorOptions,
  executorOptionIssues,
  HttpExecutorOptions,
  LocalExecutorOptions,
} from "./options.js";
export type { RetryPolicy } from "./transport.js";
