/**
 * `WorkflowR1Env`: the paper's QA environment. Operators run on the core `Executor` (an LLM) and the
 * core `Retriever` (search); the reward is the authors' format + answer score. Executor calls are
 * counted per episode (`rewardParts.executorCalls` / `executorFailures`) and over the environment's
 * life (`executorStats()`); after `executor.maxConsecutiveFailures` failures in a row the environment
 * stops with an `ExecutorUnavailableError`.
 */
import {
  Environment,
  EnvironmentError,
  type EnvironmentShape,
  Executor,
  type ExecutorShape,
  Retriever,
  type RetrieverShape,
  type Task,
} from "@workflow-r1/core";
import { Effect, Layer, Option } from "effect";
import { makeEpisode } from "./episode.js";
import type { ExecutorUnavailableError } from "./executors/errors.js";
import { isProbeableExecutor } from "./executors/http.js";
import {
  type ExecutorCounts,
  type ExecutorMonitor,
  type ExecutorStats,
  monitorExecutor,
} from "./executors/monitor.js";
import {
  defaultExecutorSettings,
  type ExecutorSettings,
  isOperatorName,
  OPERATOR_NAMES,
  type OperatorContext,
  type OperatorName,
  operators,
  PAPER_OPERATORS,
} from "./operators.js";
import { buildPrompt, stopSequences } from "./protocol.js";

export interface WorkflowR1EnvConfig {
  /** Environment name in logs. Default "workflow-r1-qa". */
  readonly name?: string;
  /**
   * Operators the agent may call (and the prompt lists). Default: the paper's seven closed-book
   * operators (`PAPER_OPERATORS`); add "Search" to opt in to retrieval (it needs a retriever).
   */
  readonly operators?: ReadonlyArray<OperatorName>;
  /** Operator calls per episode. Default 20. */
  readonly operatorBudget?: number;
  /** Observation length limit in characters. Default 2048. */
  readonly maxObservationChars?: number;
  /**
   * Executor sampling: temperature (default 0), maxTokens (default 1024), attempts (default 3),
   * multiAnswerTemperature (MultiAnswerGenerate's three samples, default 0.7); and
   * `maxConsecutiveFailures` (default 8; 0 = never): executor calls failing in a row that stop the
   * environment with an `ExecutorUnavailableError`.
   */
  readonly executor?: Partial<EnvExecutorSettings>;
  /** Passages per Search. Default 5. */
  readonly searchTopK?: number;
  /**
   * Check the executor endpoint when the environment is built (executors that can be checked, i.e.
   * `HttpExecutor`), failing with the `ExecutorUnreachableError` as cause. Default false here; the
   * `workflow-r1` trainer plugin checks by default.
   */
  readonly checkExecutor?: boolean;
}

export interface EnvExecutorSettings extends ExecutorSettings {
  /** Executor calls failing in a row that stop the environment; 0 = never. Default 8. */
  readonly maxConsecutiveFailures: number;
}

export const defaultMaxConsecutiveFailures = 8;

export interface ResolvedWorkflowR1EnvConfig {
  readonly name: string;
  readonly operators: ReadonlyArray<OperatorName>;
  readonly operatorBudget: number;
  readonly maxObservationChars: number;
  readonly executor: EnvExecutorSettings;
  readonly searchTopK: number;
}

const positiveInteger = (field: string, value: number, min = 1): EnvironmentError | undefined =>
  Number.isInteger(value) && value >= min
    ? undefined
    : new EnvironmentError({
        message: `WorkflowR1Env config: ${field} must be an integer ≥ ${min}, got ${JSON.stringify(value) ?? String(value)}`,
      });

const EXECUTOR_SETTINGS = [
  "temperature",
  "maxTokens",
  "attempts",
  "multiAnswerTemperature",
  "maxConsecutiveFailures",
] as const;

/** The environment's own executor settings (the plugin's `executor` option also holds HTTP ones). */
const pickExecutorSettings = (
  settings: Partial<EnvExecutorSettings> | undefined,
): Partial<EnvExecutorSettings> =>
  Object.fromEntries(
    EXECUTOR_SETTINGS.flatMap((k) => (settings?.[k] === undefined ? [] : [[k, settings[k]]])),
  ) as Partial<EnvExecutorSettings>;

/** Fill defaults and check the config; fails with a message naming the bad field. */
export const resolveWorkflowR1EnvConfig = (
  config: WorkflowR1EnvConfig = {},
): Effect.Effect<ResolvedWorkflowR1EnvConfig, EnvironmentError> =>
  Effect.suspend(() => {
    const names = config.operators ?? PAPER_OPERATORS;
    const unknown = names.filter((n) => !isOperatorName(n));
    if (unknown.length > 0)
      return Effect.fail(
        new EnvironmentError({
          message: `WorkflowR1Env config: unknown operators ${unknown.join(", ")}; expected some of ${OPERATOR_NAMES.join(", ")}`,
        }),
      );
    const resolved: ResolvedWorkflowR1EnvConfig = {
      name: config.name ?? "workflow-r1-qa",
      operators: [...new Set(names)],
      operatorBudget: config.operatorBudget ?? 20,
      maxObservationChars: config.maxObservationChars ?? 2048,
      executor: {
        ...defaultExecutorSettings,
        maxConsecutiveFailures: defaultMaxConsecutiveFailures,
        ...pickExecutorSettings(config.executor),
      },
      searchTopK: config.searchTopK ?? 5,
    };
    const bad =
      positiveInteger("operatorBudget", resolved.operatorBudget, 0) ??
      positiveInteger("maxObservationChars", resolved.maxObservationChars, 16) ??
      positiveInteger("executor.attempts", resolved.executor.attempts) ??
      positiveInteger("executor.maxTokens", resolved.executor.maxTokens) ??
      positiveInteger("executor.maxConsecutiveFailures", resolved.executor.maxConsecutiveFailures, 0) ??
      positiveInteger("searchTopK", resolved.searchTopK);
    if (bad) return Effect.fail(bad);
    for (const field of ["temperature", "multiAnswerTemperature"] as const)
      if (!(typeof resolved.executor[field] === "number" && resolved.executor[field] >= 0))
        return Effect.fail(
          new EnvironmentError({
            message: `WorkflowR1Env config: executor.${field} must be a number ≥ 0, got ${JSON.stringify(resolved.executor[field])}`,
          }),
        );
    return Effect.succeed(resolved);
  });

/** The Workflow-R1 environment: the core contract plus its executor counters. */
export interface WorkflowR1EnvShape extends EnvironmentShape {
  /** Cumulative executor counters over every episode of this environment. */
  readonly executorStats: () => ExecutorStats;
  /** The stop, once `executor.maxConsecutiveFailures` calls failed in a row; undefined before. */
  readonly executorUnavailable: () => ExecutorUnavailableError | undefined;
}

const stoppedError = (monitor: ExecutorMonitor): EnvironmentError | undefined => {
  const stop = monitor.unavailable();
  return stop === undefined ? undefined : new EnvironmentError({ message: stop.message, cause: stop });
};

/** Whether the operator set needs a retriever (only Search does). */
export const needsRetriever = (operatorNames: ReadonlyArray<OperatorName>): boolean =>
  operatorNames.includes("Search");

/**
 * The environment over given executor and (when Search is enabled) retriever services. Throws
 * when Search is enabled without a retriever: a programming error, which the layers and the
 * plugin report as an `EnvironmentError` before getting here.
 */
export const makeWorkflowR1Env = (
  config: ResolvedWorkflowR1EnvConfig,
  executor: ExecutorShape,
  retriever?: RetrieverShape,
): WorkflowR1EnvShape => {
  if (needsRetriever(config.operators) && retriever === undefined)
    throw new Error("WorkflowR1Env: the Search operator is enabled but no retriever was given");
  const monitor = monitorExecutor(executor, {
    maxConsecutiveFailures: config.executor.maxConsecutiveFailures,
  });
  const described = config.operators.map((name) => operators[name]);
  return {
    name: config.name,
    stopSequences,
    executorStats: monitor.stats,
    executorUnavailable: monitor.unavailable,
    reset: (task: Task) =>
      Effect.suspend(() => {
        const stop = stoppedError(monitor);
        if (stop !== undefined) return Effect.fail(stop);
        // This episode's executor calls, counted here and in the environment's totals.
        const counts: ExecutorCounts = { calls: 0, failures: 0 };
        const context: OperatorContext = {
          executor: monitor.executor(counts),
          ...(retriever !== undefined && { retriever }),
          executorSettings: config.executor,
          searchTopK: config.searchTopK,
        };
        return Effect.succeed(
          makeEpisode({
            taskId: task.id,
            messages: buildPrompt(task.question, {
              operators: described,
              operatorBudget: config.operatorBudget,
            }),
            goldenAnswers: task.goldenAnswers ?? [],
            operatorBudget: config.operatorBudget,
            maxObservationChars: config.maxObservationChars,
            operatorNames: config.operators,
            runOperator: (name, input) => operators[name as OperatorName].run(input, context),
            stopped: () => stoppedError(monitor),
            diagnostics: () => ({ executorCalls: counts.calls, executorFailures: counts.failures }),
          }),
        );
      }),
  };
};

/**
 * The start-up check of an executor that can be checked (`HttpExecutor`); nothing for others.
 * Fails with an `EnvironmentError` whose cause is the `ExecutorUnreachableError`.
 */
export const checkEnvExecutor = (executor: ExecutorShape): Effect.Effect<void, EnvironmentError> =>
  isProbeableExecutor(executor)
    ? executor.probe().pipe(Effect.mapError((e) => new EnvironmentError({ message: e.message, cause: e })))
    : Effect.void;

export const WorkflowR1Env = {
  /**
   * The `Environment` layer; requires the core `Executor`, and a `Retriever` in context when the
   * Search operator is enabled (it is read if present, and refused as missing only then).
   */
  layer: (config: WorkflowR1EnvConfig = {}): Layer.Layer<Environment, EnvironmentError, Executor> =>
    Layer.effect(
      Environment,
      Effect.gen(function* () {
        const resolved = yield* resolveWorkflowR1EnvConfig(config);
        const executor = yield* Executor;
        const retriever = Option.getOrUndefined(yield* Effect.serviceOption(Retriever));
        if (needsRetriever(resolved.operators) && retriever === undefined)
          return yield* Effect.fail(
            new EnvironmentError({
              message:
                "WorkflowR1Env config: the Search operator is enabled but no Retriever was provided (give a corpus or a retrieval server, or leave Search out of operators)",
            }),
          );
        if (config.checkExecutor === true) yield* checkEnvExecutor(executor);
        return makeWorkflowR1Env(resolved, executor, retriever);
      }),
    ),
  make: makeWorkflowR1Env,
  resolveConfig: resolveWorkflowR1EnvConfig,
} as const;

// ───────────────────────────── reading the counters ─────────────────────────────

/** The executor counters of an environment that keeps them (`WorkflowR1Env`); undefined otherwise. */
export const executorStatsOf = (env: EnvironmentShape): ExecutorStats | undefined => {
  const stats = (env as Partial<WorkflowR1EnvShape>).executorStats;
  return typeof stats === "function" ? stats() : undefined;
};

/**
 * Fails with the environment's `ExecutorUnavailableError` once it stopped on its executor; succeeds
 * otherwise (and for environments without an executor). Call it after a rollout to end the run.
 */
export const ensureExecutorAvailable = (
  env: EnvironmentShape,
): Effect.Effect<void, ExecutorUnavailableError> =>
  Effect.suspend(() => {
    const unavailable = (env as Partial<WorkflowR1EnvShape>).executorUnavailable;
    const stop = typeof unavailable === "function" ? unavailable() : undefined;
    return stop === undefined ? Effect.void : Effect.fail(stop);
  });

/**
 * Step metrics from two snapshots of {@link executorStatsOf}: `executor/calls` and
 * `executor/failures` since `before` (all of them without it), `executor/consecutive_failures` now.
 */
export const executorMetrics = (
  after: ExecutorStats,
  before?: ExecutorStats,
  prefix = "",
): Record<string, number> => ({
  [`${prefix}executor/calls`]: after.calls - (before?.calls ?? 0),
  [`${prefix}executor/failures`]: after.failures - (before?.failures ?? 0),
  [`${prefix}executor/consecutive_failures`]: after.consecutiveFailures,
});
