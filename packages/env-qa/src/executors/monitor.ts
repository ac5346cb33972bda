/**
 * Counting executor calls: how many, how many failed, how many failed in a row, the last error; and
 * a stop after `maxConsecutiveFailures` failures in a row (the executor is then treated as down).
 * A failed call is still the caller's to handle (operators turn it into an observation); the
 * monitor only counts it, and once stopped answers every further call at once with the stop.
 */
import {
  type Completion,
  type CompletionRequest,
  ExecutorHttpError,
  type ExecutorShape,
} from "@workflow-r1/core";
import { Cause, Effect, Exit } from "effect";
import { ExecutorUnavailableError } from "./errors.js";

/** Cumulative counters of a monitored executor (plain data: log it as it is). */
export interface ExecutorStats {
  /** The executor's base URL, when it has one (HttpExecutor). */
  readonly url?: string;
  /** Calls that ended (success or failure; each is one request after its HTTP retries). */
  readonly calls: number;
  readonly failures: number;
  /** Failures since the last success. */
  readonly consecutiveFailures: number;
  /** The stop threshold (0 = never stop). */
  readonly maxConsecutiveFailures: number;
  /** The message of the most recent failure, if any. */
  readonly lastError?: string;
  /** True once the threshold was reached: every later call fails at once. */
  readonly unavailable: boolean;
}

/** Per-episode counters, updated in place by {@link ExecutorMonitor.executor}. */
export interface ExecutorCounts {
  calls: number;
  failures: number;
}

export interface ExecutorMonitor {
  readonly url: string | undefined;
  /** A snapshot of the cumulative counters. */
  readonly stats: () => ExecutorStats;
  /** The stop, once `maxConsecutiveFailures` calls failed in a row; undefined before. */
  readonly unavailable: () => ExecutorUnavailableError | undefined;
  /**
   * The executor, counted: every call updates the cumulative counters and `counts` (e.g. one
   * episode's). Once stopped, a call fails at once with an `ExecutorHttpError` carrying the stop's
   * message, without reaching the executor.
   */
  readonly executor: (counts?: ExecutorCounts) => ExecutorShape;
}

export interface ExecutorMonitorOptions {
  /** Failed calls in a row that stop the executor; 0 = never. */
  readonly maxConsecutiveFailures: number;
  /** For messages; default: the executor's own `baseUrl` when it has one. */
  readonly url?: string;
}

/**
 * The base URL an executor declares (HttpExecutor does), or else its label (a local executor's
 * `local:<model path>`), for messages and stats.
 */
export const executorUrl = (executor: ExecutorShape): string | undefined => {
  const { baseUrl, label } = executor as { readonly baseUrl?: unknown; readonly label?: unknown };
  return typeof baseUrl === "string" ? baseUrl : typeof label === "string" ? label : undefined;
};

const messageOf = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause);
  if (typeof error === "object" && error !== null && "message" in error) return String(error.message);
  return String(error);
};

/** Wrap an executor with counters and the consecutive-failure stop. */
export const monitorExecutor = (
  executor: ExecutorShape,
  options: ExecutorMonitorOptions,
): ExecutorMonitor => {
  const url = options.url ?? executorUrl(executor);
  const max = options.maxConsecutiveFailures;
  let calls = 0;
  let failures = 0;
  let consecutive = 0;
  let lastError: string | undefined;
  let stopped: ExecutorUnavailableError | undefined;

  const record = (counts: ExecutorCounts | undefined, exit: Exit.Exit<Completion, unknown>): void => {
    // An interrupted call (deadline, cancelled rollout) says nothing about the executor.
    if (Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)) return;
    calls++;
    if (counts) counts.calls++;
    if (Exit.isSuccess(exit)) {
      consecutive = 0;
      return;
    }
    failures++;
    if (counts) counts.failures++;
    consecutive++;
    lastError = messageOf(exit.cause);
    if (stopped === undefined && max > 0 && consecutive >= max)
      stopped = new ExecutorUnavailableError({
        message:
          `executor ${url ?? "(no URL)"} is unavailable: ${consecutive} calls failed in a row ` +
          `(maxConsecutiveFailures ${max}); last error: ${lastError}. Stopping rather than going on ` +
          "with error observations: check the executor server, or raise " +
          "environment.options.executor.maxConsecutiveFailures (0 = never stop).",
        ...(url === undefined ? {} : { url }),
        consecutiveFailures: consecutive,
        lastError,
      });
  };

  return {
    url,
    stats: () => ({
      ...(url === undefined ? {} : { url }),
      calls,
      failures,
      consecutiveFailures: consecutive,
      maxConsecutiveFailures: max,
      ...(lastError === undefined ? {} : { lastError }),
      unavailable: stopped !== undefined,
    }),
    unavailable: () => stopped,
    executor: (counts) => ({
      complete: (request: CompletionRequest) =>
        Effect.suspend(() =>
          stopped !== undefined
            ? Effect.fail(
                new ExecutorHttpError({
                  message: stopped.message,
                  ...(url === undefined ? {} : { url }),
                  attempts: 0,
                }),
              )
            : executor
                .complete(request)
                .pipe(Effect.onExit((exit) => Effect.sync(() => record(counts, exit)))),
        ),
    }),
  };
};
