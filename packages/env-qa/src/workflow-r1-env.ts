/**
 * `WorkflowR1Env`: the paper's QA environment. Operators run on the core `Executor` (an LLM) and the
 * core `Retriever` (search); the reward is the authors' format + answer score.
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
import { Effect, Layer } from "effect";
import { makeEpisode } from "./episode.js";
import {
  defaultExecutorSettings,
  type ExecutorSettings,
  isOperatorName,
  OPERATOR_NAMES,
  type OperatorContext,
  type OperatorName,
  operators,
} from "./operators.js";
import { buildPrompt, stopSequences } from "./protocol.js";

export interface WorkflowR1EnvConfig {
  /** Environment name in logs. Default "workflow-r1-qa". */
  readonly name?: string;
  /** Operators the agent may call (and the prompt lists). Default: all eight. */
  readonly operators?: ReadonlyArray<OperatorName>;
  /** Operator calls per episode. Default 20. */
  readonly operatorBudget?: number;
  /** Observation length limit in characters. Default 2048. */
  readonly maxObservationChars?: number;
  /** Executor sampling: temperature (default 0), maxTokens (default 1024), attempts (default 3). */
  readonly executor?: Partial<ExecutorSettings>;
  /** Passages per Search. Default 5. */
  readonly searchTopK?: number;
}

export interface ResolvedWorkflowR1EnvConfig {
  readonly name: string;
  readonly operators: ReadonlyArray<OperatorName>;
  readonly operatorBudget: number;
  readonly maxObservationChars: number;
  readonly executor: ExecutorSettings;
  readonly searchTopK: number;
}

const positiveInteger = (field: string, value: number, min = 1): EnvironmentError | undefined =>
  Number.isInteger(value) && value >= min
    ? undefined
    : new EnvironmentError({
        message: `WorkflowR1Env config: ${field} must be an integer ≥ ${min}, got ${value}`,
      });

/** Fill defaults and check the config; fails with a message naming the bad field. */
export const resolveWorkflowR1EnvConfig = (
  config: WorkflowR1EnvConfig = {},
): Effect.Effect<ResolvedWorkflowR1EnvConfig, EnvironmentError> =>
  Effect.suspend(() => {
    const names = config.operators ?? OPERATOR_NAMES;
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
      executor: { ...defaultExecutorSettings, ...config.executor },
      searchTopK: config.searchTopK ?? 5,
    };
    const bad =
      positiveInteger("operatorBudget", resolved.operatorBudget, 0) ??
      positiveInteger("maxObservationChars", resolved.maxObservationChars, 16) ??
      positiveInteger("executor.attempts", resolved.executor.attempts) ??
      positiveInteger("executor.maxTokens", resolved.executor.maxTokens) ??
      positiveInteger("searchTopK", resolved.searchTopK);
    if (bad) return Effect.fail(bad);
    if (!(resolved.executor.temperature >= 0))
      return Effect.fail(
        new EnvironmentError({
          message: `WorkflowR1Env config: executor.temperature must be ≥ 0, got ${resolved.executor.temperature}`,
        }),
      );
    return Effect.succeed(resolved);
  });

/** The environment over given executor and retriever services. */
export const makeWorkflowR1Env = (
  config: ResolvedWorkflowR1EnvConfig,
  executor: ExecutorShape,
  retriever: RetrieverShape,
): EnvironmentShape => {
  const context: OperatorContext = {
    executor,
    retriever,
    executorSettings: config.executor,
    searchTopK: config.searchTopK,
  };
  const described = config.operators.map((name) => operators[name]);
  return {
    name: config.name,
    stopSequences,
    reset: (task: Task) =>
      Effect.sync(() =>
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
        }),
      ),
  };
};

export const WorkflowR1Env = {
  /** The `Environment` layer; requires the core `Executor` and `Retriever`. */
  layer: (
    config: WorkflowR1EnvConfig = {},
  ): Layer.Layer<Environment, EnvironmentError, Executor | Retriever> =>
    Layer.effect(
      Environment,
      Effect.gen(function* () {
        const resolved = yield* resolveWorkflowR1EnvConfig(config);
        const executor = yield* Executor;
        const retriever = yield* Retriever;
        return makeWorkflowR1Env(resolved, executor, retriever);
      }),
    ),
  make: makeWorkflowR1Env,
  resolveConfig: resolveWorkflowR1EnvConfig,
} as const;
