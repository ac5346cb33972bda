/**
 * Typed errors shared by every package. Each carries the facts a user needs to act on it
 * (file, line, field, URL, status…) and a readable `message` built from them.
 */
import { Data } from "effect";

/** A configuration value is missing or invalid. */
export class ConfigError extends Data.TaggedError("ConfigError")<{
  readonly message: string;
  /** The config file, when the value came from one. */
  readonly file?: string;
  /** Dotted path of the offending field, e.g. `algorithm.clipLow`. */
  readonly field?: string;
}> {}

/** A dataset file cannot be read or a record does not have the expected shape. */
export class DatasetError extends Data.TaggedError("DatasetError")<{
  readonly message: string;
  readonly file: string;
  /** 1-based line (jsonl) or 0-based row (parquet). */
  readonly line?: number;
  readonly field?: string;
}> {}

/** A model (GGUF, LoRA adapter) could not be loaded. */
export class ModelLoadError extends Data.TaggedError("ModelLoadError")<{
  readonly message: string;
  readonly path: string;
  readonly cause?: unknown;
}> {}

/** The policy (sampler) failed while sampling, scoring or reloading. */
export class PolicyError extends Data.TaggedError("PolicyError")<{
  readonly message: string;
  readonly cause?: unknown;
}> {}

/** A sequence would exceed the model's context window. */
export class ContextOverflowError extends Data.TaggedError("ContextOverflowError")<{
  readonly message: string;
  readonly needed: number;
  readonly contextSize: number;
}> {}

/** An executor (operator LLM) call did not answer in time. */
export class ExecutorTimeoutError extends Data.TaggedError("ExecutorTimeoutError")<{
  readonly message: string;
  readonly url?: string;
  readonly timeoutMs: number;
  readonly attempts: number;
}> {}

/** An executor call failed with an HTTP status, a network error or an unreadable body. */
export class ExecutorHttpError extends Data.TaggedError("ExecutorHttpError")<{
  readonly message: string;
  readonly url?: string;
  /** HTTP status, or undefined for network errors and malformed bodies. */
  readonly status?: number;
  readonly attempts: number;
}> {}

/** Text produced by a model or read from a file could not be parsed. */
export class ParseError extends Data.TaggedError("ParseError")<{
  readonly message: string;
  readonly input?: string;
}> {}

/** The native (ggml) learner rejected an input or failed inside the addon. */
export class NativeLearnerError extends Data.TaggedError("NativeLearnerError")<{
  readonly message: string;
  /** The learner operation that failed, e.g. `backward`. */
  readonly operation: string;
}> {}

/** A retriever (search) call failed. */
export class RetrieverError extends Data.TaggedError("RetrieverError")<{
  readonly message: string;
  readonly cause?: unknown;
}> {}

/** An environment failed in a way that is not the agent's fault. */
export class EnvironmentError extends Data.TaggedError("EnvironmentError")<{
  readonly message: string;
  readonly cause?: unknown;
}> {}

/** A trajectory violates one of the invariants of {@link validateTrajectory}. */
export class TrajectoryValidationError extends Data.TaggedError("TrajectoryValidationError")<{
  readonly message: string;
  readonly field: string;
  /** Token position where the problem was found, when it is about one position. */
  readonly position?: number;
}> {}

export type ExecutorError = ExecutorTimeoutError | ExecutorHttpError;
