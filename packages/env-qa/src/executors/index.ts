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
export { LocalExecutor, type LocalExecutorConfig, makeLocalExecutor } from "./local.js";
export {
  type ExecutorCounts,
  type ExecutorMonitor,
  type ExecutorMonitorOptions,
  type ExecutorStats,
  executorUrl,
  monitorExecutor,
} from "./monitor.js";
export type { RetryPolicy } from "./transport.js";
