export { LlamaServerHttpError, LlamaServerUnavailableError, LlamaServerUnsupportedError } from "./errors.js";
export {
  type CompletionStats,
  endsInsideUtf8Char,
  HttpPolicy,
  type HttpPolicyOptions,
  type HttpPolicySequence,
  type HttpPolicyShape,
  type ServerStatus,
} from "./policy.js";
export type { BalanceStrategy } from "./pool.js";
