/**
 * Typed errors of an executor that is down, as opposed to one call that failed (those are the core
 * `ExecutorHttpError` / `ExecutorTimeoutError`, which operators turn into observations).
 */
import { Data } from "effect";

/**
 * The start-up check of an executor endpoint failed: nothing answers at `url` (closed port, wrong
 * host), it did not answer within the check's time limit, it answered with an error status, or its
 * answer is not an OpenAI-compatible one.
 */
export class ExecutorUnreachableError extends Data.TaggedError("ExecutorUnreachableError")<{
  readonly message: string;
  /** The base URL that was checked, e.g. `http://127.0.0.1:8000/v1`. */
  readonly url: string;
  readonly reason: "network" | "timeout" | "status" | "body";
  /** HTTP status of the failing answer, when there was one. */
  readonly status?: number;
}> {}

/**
 * `maxConsecutiveFailures` executor calls failed in a row: the executor is treated as down and the
 * environment refuses to go on (rather than train on error observations).
 */
export class ExecutorUnavailableError extends Data.TaggedError("ExecutorUnavailableError")<{
  readonly message: string;
  /** The executor's base URL, when it has one (HttpExecutor). */
  readonly url?: string;
  readonly consecutiveFailures: number;
  /** The message of the last failed call. */
  readonly lastError: string;
}> {}
