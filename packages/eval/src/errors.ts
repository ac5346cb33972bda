import { Data } from "effect";

/** An evaluation cannot run as asked (unknown method or benchmark, bad option). */
export class EvaluationError extends Data.TaggedError("EvaluationError")<{
  readonly message: string;
  readonly method?: string;
  readonly benchmark?: string;
  readonly field?: string;
  readonly cause?: unknown;
}> {}

/** The resumable results file cannot be read or written, or a line of it is malformed. */
export class ResultsFileError extends Data.TaggedError("ResultsFileError")<{
  readonly message: string;
  readonly file: string;
  /** 1-based line of a malformed record. */
  readonly line?: number;
  readonly cause?: unknown;
}> {}
