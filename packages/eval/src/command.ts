/**
 * `workflow-r1 eval`: load benchmarks from a FlashRAG data directory, build the policy (llama.cpp)
 * and the operators' executor (OpenAI-compatible HTTP), evaluate, and write the resumable results
 * file and the reports into the output directory.
 */
import { join, resolve } from "node:path";
import {
  DatasetError,
  Environment,
  EnvironmentError,
  type Executor,
  type Policy,
  Retriever,
  RetrieverError,
} from "@workflow-r1/core";
import {
  Bm25Retriever,
  HttpExecutor,
  HttpRetriever,
  isOperatorName,
  listBenchmarks,
  loadBenchmarks,
  OPERATOR_NAMES,
  type OperatorName,
  WorkflowR1Env,
} from "@workflow-r1/env-qa";
import { LlamaCppPolicy } from "@workflow-r1/policy";
import { Effect, Layer } from "effect";
import { selectBenchmarks } from "./benchmarks.js";
import { EvaluationError } from "./errors.js";
import { createEvalProgress, type ProgressMode } from "./progress.js";
import { type ReportFiles, writeReports } from "./report.js";
import { type Benchmark, type EvalRun, evaluate } from "./runner.js";

export interface EvalCommandOptions {
  /** Directory of FlashRAG jsonl benchmarks (e.g. /work/shared/data/qa). */
  readonly data: string;
  /** Benchmark names (comma-separated or a list); default: every benchmark present in `data`. */
  readonly benchmarks?: string | ReadonlyArray<string>;
  /** Method name(s), comma-separated or a list: direct, cot, sc, workflow, or a registered one. */
  readonly method: string | ReadonlyArray<string>;
  /** The policy's GGUF file. */
  readonly model: string;
  /** OpenAI-compatible base URL of the operators' executor LLM (needed by `workflow`). */
  readonly executorUrl?: string;
  /** Model name sent to the executor (default: env WORKFLOW_R1_EXECUTOR_MODEL). */
  readonly executorModel?: string;
  /** FlashRAG corpus jsonl for the Search operator (in-process BM25). */
  readonly corpus?: string;
  /** Search-R1 retrieval server endpoint for the Search operator (e.g. http://127.0.0.1:8000/retrieve). */
  readonly retrieverUrl?: string;
  /** Operators the agent may call (default: all eight, or all but Search without a corpus or retriever). */
  readonly operators?: string | ReadonlyArray<string>;
  /** Operator calls per episode (default: the environment's, 20). */
  readonly operatorBudget?: number;
  readonly limit?: number;
  readonly samples?: number;
  /** Output directory (default `eval-out`): results.jsonl, report.json, report.md, report.html. */
  readonly out?: string;
  readonly concurrency?: number;
  readonly maxTokens?: number;
  readonly maxTurns?: number;
  readonly temperature?: number;
  readonly seed?: number;
  /** Context size per sequence of the policy (default: the policy package's, 2048). */
  readonly contextSize?: number;
  /** `false` = CPU only (default `"auto"`). */
  readonly gpu?: "auto" | "cuda" | "vulkan" | false;
  /** CPU threads of the policy (default: all cores). */
  readonly threads?: number;
  readonly progress?: ProgressMode;
  /** Where progress goes (default: process.stderr). */
  readonly stream?: NodeJS.WritableStream & { isTTY?: boolean };
}

export interface EvalCommandResult {
  readonly run: EvalRun;
  readonly files: ReportFiles & { readonly results: string };
}

/** What the command builds its services from; tests and other front ends can swap any of them. */
export interface EvalCommandDeps {
  readonly loadBenchmarks: (
    dataDir: string,
    names: ReadonlyArray<string> | undefined,
  ) => Effect.Effect<ReadonlyArray<Benchmark>, unknown>;
  readonly policyLayer: (options: EvalCommandOptions) => Layer.Layer<Policy, unknown>;
  readonly executorLayer: (
    options: EvalCommandOptions & { readonly executorUrl: string },
  ) => Layer.Layer<Executor, unknown>;
  /** The agent's environment over the executor (needed by `workflow`); absent when none is available. */
  readonly environmentLayer?: (options: EvalCommandOptions) => Layer.Layer<Environment, unknown, Executor>;
}

export const splitList = (value: string | ReadonlyArray<string> | undefined): string[] | undefined => {
  if (value === undefined) return undefined;
  const items = (typeof value === "string" ? value.split(",") : [...value])
    .map((s) => s.trim())
    .filter(Boolean);
  return items.length === 0 ? undefined : items;
};

/** The command as an Effect, over explicit dependencies. */
export const evalCommand = (
  options: EvalCommandOptions,
  deps: EvalCommandDeps,
): Effect.Effect<EvalCommandResult, unknown> =>
  Effect.gen(function* () {
    const methods = splitList(options.method);
    if (!methods)
      return yield* Effect.fail(new EvaluationError({ message: "--method is required", field: "method" }));
    const out = resolve(options.out ?? "eval-out");
    const resultsFile = join(out, "results.jsonl");
    const benchmarks = yield* deps.loadBenchmarks(options.data, splitList(options.benchmarks));
    if (
      methods.includes("workflow") &&
      (options.executorUrl === undefined || deps.environmentLayer === undefined)
    )
      return yield* Effect.fail(
        new EvaluationError({
          message:
            options.executorUrl === undefined
              ? "--method workflow needs --executor-url (the operators' OpenAI-compatible endpoint)"
              : "--method workflow needs the Workflow-R1 environment, which this build does not provide",
          method: "workflow",
          field: "executorUrl",
        }),
      );
    let services:
      | Layer.Layer<never, unknown>
      | Layer.Layer<Executor, unknown>
      | Layer.Layer<Executor | Environment, unknown> = Layer.empty;
    if (options.executorUrl !== undefined) {
      const executor = deps.executorLayer({ ...options, executorUrl: options.executorUrl });
      services =
        deps.environmentLayer === undefined
          ? executor
          : Layer.merge(executor, deps.environmentLayer(options).pipe(Layer.provide(executor)));
    }
    const progress = createEvalProgress({
      ...(options.progress ? { mode: options.progress } : {}),
      ...(options.stream ? { stream: options.stream } : {}),
    });
    const run = yield* evaluate({
      benchmarks,
      method: methods,
      resultsFile,
      ...(options.samples !== undefined ? { samples: options.samples } : {}),
      ...(options.limit !== undefined ? { limit: options.limit } : {}),
      ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
      ...(options.maxTokens !== undefined ? { maxTokens: options.maxTokens } : {}),
      ...(options.maxTurns !== undefined ? { maxTurns: options.maxTurns } : {}),
      ...(options.temperature !== undefined ? { temperature: options.temperature } : {}),
      ...(options.seed !== undefined ? { seed: options.seed } : {}),
      config: {
        model: options.model,
        executorUrl: options.executorUrl ?? null,
        executorModel: options.executorModel ?? null,
        data: options.data,
      },
      onProgress: progress.onProgress,
    }).pipe(
      Effect.ensuring(Effect.sync(progress.stop)),
      Effect.provide(Layer.merge(deps.policyLayer(options), services)),
    );
    const files = yield* Effect.tryPromise({
      try: () => writeReports(out, run.report),
      catch: (cause) =>
        new EvaluationError({ message: `cannot write the reports into ${out}: ${String(cause)}`, cause }),
    });
    return { run, files: { ...files, results: resultsFile } };
  });

/** Benchmarks of a FlashRAG data directory through env-qa's loaders, one file per requested name. */
export const loadEvalBenchmarks = (
  dataDir: string,
  names: ReadonlyArray<string> | undefined,
): Effect.Effect<Benchmark[], DatasetError> =>
  Effect.gen(function* () {
    const files = yield* listBenchmarks(dataDir);
    const { selected, unknown } = selectBenchmarks(files, names);
    if (unknown.length > 0)
      return yield* Effect.fail(
        new DatasetError({
          message: `${dataDir}: unknown benchmark ${unknown.join(", ")}; available: ${[
            ...new Set(files.flatMap((f) => [f.dataset, f.name])),
          ].join(", ")}`,
          file: dataDir,
        }),
      );
    if (selected.length === 0)
      return yield* Effect.fail(
        new DatasetError({ message: `${dataDir}: no benchmark files (*/*.jsonl)`, file: dataDir }),
      );
    // Workflow-R1 evaluates Search-R1's processed questions (stripped, ending with "?").
    const loaded = yield* loadBenchmarks(
      dataDir,
      selected.map((s) => s.file.name),
      { searchR1Question: true },
    );
    return selected.map((s) => {
      const benchmark = loaded.find((b) => b.name === s.file.name)!;
      return { name: s.label, tasks: benchmark.tasks, file: benchmark.file };
    });
  });

/** The services of `workflow-r1 eval`: llama.cpp policy, HTTP executor, env-qa's loaders. */
export const defaultEvalCommandDeps: EvalCommandDeps = {
  loadBenchmarks: loadEvalBenchmarks,
  policyLayer: (options) => {
    const concurrency = options.concurrency ?? 4;
    // Questions in flight × samples in flight per question.
    const sequences = concurrency * Math.max(1, Math.min(options.samples ?? 1, concurrency));
    return LlamaCppPolicy.layer({
      modelPath: options.model,
      sequences,
      ...(options.contextSize === undefined ? {} : { contextSize: options.contextSize }),
      ...(options.gpu === undefined ? {} : { gpu: options.gpu }),
      ...(options.threads === undefined ? {} : { threads: options.threads }),
    });
  },
  executorLayer: (options) =>
    HttpExecutor.layer({
      baseUrl: options.executorUrl,
      ...(options.executorModel === undefined ? {} : { model: options.executorModel }),
    }),
  environmentLayer: (options) => workflowEnvironmentLayer(options),
};

/** The retriever for Search: BM25 over `corpus`, or a Search-R1 server; none when neither is set. */
const retrieverLayer = (options: EvalCommandOptions): Layer.Layer<Retriever, RetrieverError> | undefined => {
  if (options.corpus !== undefined) return Bm25Retriever.layer({ corpusPath: options.corpus });
  if (options.retrieverUrl !== undefined) return HttpRetriever.layer({ url: options.retrieverUrl });
  return undefined;
};

/**
 * env-qa's Workflow-R1 environment for `workflow`, over the executor in context. Without a corpus
 * or retrieval server the Search operator is left out of the prompt (and cannot be called).
 */
export const workflowEnvironmentLayer = (
  options: EvalCommandOptions,
): Layer.Layer<Environment, EnvironmentError | RetrieverError, Executor> => {
  const retriever = retrieverLayer(options);
  const requested = splitList(options.operators);
  const unknown = (requested ?? []).filter((name) => !isOperatorName(name));
  if (unknown.length > 0)
    return Layer.effect(
      Environment,
      Effect.fail(
        new EnvironmentError({
          message: `unknown operator(s) ${unknown.join(", ")}; available: ${OPERATOR_NAMES.join(", ")}`,
        }),
      ),
    );
  const operators =
    (requested as OperatorName[] | undefined) ?? OPERATOR_NAMES.filter((o) => retriever || o !== "Search");
  if (!retriever && operators.includes("Search"))
    return Layer.effect(
      Environment,
      Effect.fail(new EnvironmentError({ message: "operator Search needs --corpus or --retriever-url" })),
    );
  const noSearch = Layer.succeed(Retriever, {
    search: () => Effect.fail(new RetrieverError({ message: "no corpus or retrieval server configured" })),
  });
  return WorkflowR1Env.layer({
    operators,
    ...(options.operatorBudget === undefined ? {} : { operatorBudget: options.operatorBudget }),
  }).pipe(Layer.provide(retriever ?? noSearch));
};

/**
 * `workflow-r1 eval --data DIR --benchmarks a,b --method M --model M.gguf [--executor-url URL]
 * [--limit N] [--samples K] [--out DIR]`: evaluate, write `results.jsonl` (resumable) and
 * `report.{json,md,html}` into `out`.
 */
export const runEvalCommand = (
  options: EvalCommandOptions,
  deps: Partial<EvalCommandDeps> = {},
): Promise<EvalCommandResult> =>
  Effect.runPromise(evalCommand(options, { ...defaultEvalCommandDeps, ...deps }));
