export {
  ChatCompletionResponse,
  HttpExecutor,
  type HttpExecutorConfig,
  makeHttpExecutor,
  type ResolvedHttpExecutorConfig,
  resolveHttpExecutorConfig,
} from "./http.js";
export { LocalExecutor, type LocalExecutorConfig, makeLocalExecutor } from "./local.js";
export { parseRetryAfter, type RetryPolicy } from "./transport.js";
