/**
 * `workflow-r1 eval`: load benchmarks from a FlashRAG data directory, build the policy (llama.cpp)
 * and the operators' executor (OpenAI-compatible HTTP, or a GGUF in-process with `executorLocal`),
 * evaluate, and write the resumable results file and the reports into the output directory.
 */
import { availableParallelism } from "node:os";
import { join, resolve } from "node:path";
import {
  DatasetError,
  Environment,
  EnvironmentError,
  type Executor,
  type Policy,
  Policy as PolicyService,
  type PolicyShape,
  Retriever,
  RetrieverError,
} from "@workflow-r1/core";
import {
  Bm25Retriever,
  HttpExecutor,
  HttpRetriever,
  isOperatorName,
  LocalModelExecutor,
  listBenchmarks,
  loadBenchmarks,
  OPERATOR_NAMES,
  type OperatorName,
  PAPER_OPERATORS,
  tasksInPart,
  WorkflowR1Env,
} from "@workflow-r1/env-qa";
import { LlamaCppPolicy } from "@workflow-r1/policy";
import { Effect, Layer } from "effect";
import { selectBenchmarks } from "./benchmarks.js";
import { EvaluationError } from "./errors.js";
import { modelFingerprint, trainedContextSize, trainingSetOf } from "./identity.js";
import { decodeEvalOptions } from "./options.js";
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
  /** The policy's GGUF file (not needed when `answerer` is "executor"). */
  readonly model?: string;
  /** Who answers direct / cot / sc: the policy GGUF (default) or the executor endpoint. */
  readonly answerer?: "policy" | "executor";
  /** Tokens per episode for `workflow`, observations included (default 8192). */
  readonly maxEpisodeTokens?: number;
  /**
   * The training run whose questions must not be evaluated (default: the run directory holding
   * `model`, when it has a config.json). Its trained-on datasets are evaluated on their held-out
   * part only.
   */
  readonly trainRun?: string;
  /** Evaluate trained-on datasets whole anyway (flagged loudly and in the report). */
  readonly allowTrainOverlap?: boolean;
  /** OpenAI-compatible base URL of the operators' executor LLM (needed by `workflow`). */
  readonly executorUrl?: string;
  /** Model name sent to the executor (default: env WORKFLOW_R1_EXECUTOR_MODEL). */
  readonly executorModel?: string;
  /**
   * A GGUF that runs the executor in-process through llama.cpp (CPU), instead of an endpoint
   * (env-qa's `LocalModelExecutor`; exclusive with `executorUrl`).
   */
  readonly executorLocal?: string;
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
  /**
   * Context size per sequence of the policy (default: the training run's `model.contextSize` when
   * the model comes from one, else 2048).
   */
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
  /** The executor on a local GGUF (`executorLocal`); absent when this build has none. */
  readonly localExecutorLayer?: (
    options: EvalCommandOptions & { readonly executorLocal: string },
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

/** The command as an Effect, over explicit dependencies; the options are decoded with {@link EvalOptions} first. */
export const evalCommand = (
  options0: EvalCommandOptions,
  deps: EvalCommandDeps,
): Effect.Effect<EvalCommandResult, unknown> =>
  Effect.gen(function* () {
    const decoded = yield* decodeEvalOptions(options0);
    // The environment fills what the flags leave out (as `eval --help` says).
    // A local executor (--executor-local) leaves WORKFLOW_R1_EXECUTOR_URL unread.
    const executorUrl =
      decoded.executorUrl ||
      (decoded.executorLocal === undefined ? process.env["WORKFLOW_R1_EXECUTOR_URL"] : undefined) ||
      undefined;
    const executorModel = decoded.executorModel || process.env["WORKFLOW_R1_EXECUTOR_MODEL"] || undefined;
    // A trained policy runs with its training run's context size unless --context-size is given.
    const contextSize =
      decoded.contextSize ??
      (decoded.answerer === "executor" ? undefined : trainedContextSize(decoded.model, decoded.trainRun));
    const options: EvalCommandOptions = {
      ...decoded,
      ...(executorUrl !== undefined && { executorUrl }),
      ...(executorModel !== undefined && { executorModel }),
      ...(contextSize !== undefined && { contextSize }),
    };
    const log = (line: string) => (options.stream ?? process.stderr).write(`${line}\n`);
    const methods = splitList(options.method);
    if (!methods)
      return yield* Effect.fail(new EvaluationError({ message: "--method is required", field: "method" }));
    const answerer = options.answerer ?? "policy";
    if (options.executorLocal !== undefined && decoded.executorUrl !== undefined)
      return yield* Effect.fail(
        new EvaluationError({
          message:
            "--executor-local and --executor-url are exclusive: the executor runs either on a local GGUF or on an endpoint",
          field: "executorLocal",
        }),
      );
    // A local GGUF, when given, is the executor (WORKFLOW_R1_EXECUTOR_URL is then not read).
    const hasExecutor = options.executorLocal !== undefined || options.executorUrl !== undefined;
    if (answerer === "executor") {
      const notSingleTurn = methods.filter((m) => !["direct", "cot", "sc"].includes(m));
      if (notSingleTurn.length > 0)
        return yield* Effect.fail(
          new EvaluationError({
            message: `--answerer executor runs direct, cot and sc on the executor endpoint; ${notSingleTurn.join(", ")} needs the policy (--model)`,
            field: "answerer",
          }),
        );
      if (!hasExecutor)
        return yield* Effect.fail(
          new EvaluationError({
            message:
              "--answerer executor needs --executor-url (or WORKFLOW_R1_EXECUTOR_URL) or --executor-local <gguf>",
            field: "executorUrl",
          }),
        );
    } else if (options.model === undefined || options.model === "")
      return yield* Effect.fail(
        new EvaluationError({
          message:
            "--model is required: the policy GGUF to evaluate (a path or hf: URI); or --answerer executor to run direct/cot/sc on the executor endpoint",
          field: "model",
        }),
      );
    const out = resolve(options.out ?? "eval-out");
    const resultsFile = join(out, "results.jsonl");
    const loaded = yield* deps.loadBenchmarks(options.data, splitList(options.benchmarks));
    // Never evaluate a run on its own training questions: a trained-on dataset is evaluated on
    // its held-out part (the split the trainer used), unless overridden, loudly.
    const training = answerer === "policy" ? trainingSetOf(options.model, options.trainRun) : undefined;
    const overlaps: string[] = [];
    const benchmarks = loaded.map((benchmark) => {
      const dataset = String(benchmark.tasks[0]?.metadata?.["dataset"] ?? benchmark.name.split("/")[0]);
      if (training === undefined || !training.datasets.includes(dataset)) return benchmark;
      overlaps.push(benchmark.name);
      if (options.allowTrainOverlap) {
        log(
          `eval: WARNING ${benchmark.name} includes questions ${training.run} trained on (--allow-train-overlap): its scores are not held-out scores`,
        );
        return benchmark;
      }
      const tasks = tasksInPart(benchmark.tasks, "held-out", training.heldOutFraction);
      log(
        `eval: ${training.run} trained on ${dataset}: evaluating only the held-out part of ${benchmark.name} (${tasks.length} of ${benchmark.tasks.length} questions)`,
      );
      return { ...benchmark, name: `${benchmark.name} (held-out)`, tasks };
    });
    const empty = benchmarks.filter((b) => b.tasks.length === 0);
    if (benchmarks.length === 0 || empty.length > 0)
      return yield* Effect.fail(
        new EvaluationError({
          message:
            benchmarks.length === 0
              ? `${options.data}: no benchmark to evaluate`
              : `no questions to evaluate: ${empty
                  .map((b) => (b.file === undefined ? b.name : `${b.name} (${b.file})`))
                  .join(", ")} ${empty.length === 1 ? "has" : "have"} none`,
          field: "benchmarks",
        }),
      );
    if (options.executorLocal !== undefined && deps.localExecutorLayer === undefined)
      return yield* Effect.fail(
        new EvaluationError({
          message: "--executor-local needs a local executor, which this build does not provide",
          field: "executorLocal",
        }),
      );
    if (methods.includes("workflow") && (!hasExecutor || deps.environmentLayer === undefined))
      return yield* Effect.fail(
        new EvaluationError({
          message: !hasExecutor
            ? "--method workflow needs --executor-url (the operators' OpenAI-compatible endpoint, or WORKFLOW_R1_EXECUTOR_URL) or --executor-local <gguf> (the executor in-process)"
            : "--method workflow needs the Workflow-R1 environment, which this build does not provide",
          method: "workflow",
          field: "executorUrl",
        }),
      );
    let services:
      | Layer.Layer<never, unknown>
      | Layer.Layer<Executor, unknown>
      | Layer.Layer<Executor | Environment, unknown> = Layer.empty;
    if (hasExecutor) {
      const executor =
        options.executorLocal !== undefined && deps.localExecutorLayer !== undefined
          ? deps.localExecutorLayer({ ...options, executorLocal: options.executorLocal })
          : deps.executorLayer({ ...options, executorUrl: options.executorUrl ?? "" });
      services =
        deps.environmentLayer === undefined || !methods.includes("workflow")
          ? executor
          : Layer.merge(executor, deps.environmentLayer(options).pipe(Layer.provide(executor)));
    }
    const operators = splitList(options.operators) ?? PAPER_OPERATORS;
    // Everything besides the method's settings that determines an answer.
    const identity = {
      answerer,
      model:
        answerer === "policy" && options.model !== undefined
          ? yield* Effect.promise(() => modelFingerprint(options.model!))
          : null,
      executorModel:
        answerer === "executor" || methods.includes("workflow")
          ? options.executorLocal !== undefined
            ? `local:${yield* Effect.promise(() => modelFingerprint(options.executorLocal!))}`
            : (options.executorModel ?? null)
          : null,
      ...(methods.includes("workflow") && {
        operators: [...operators].sort(),
        operatorBudget: options.operatorBudget ?? 20,
      }),
    };
    const progress = createEvalProgress({
      ...(options.progress ? { mode: options.progress } : {}),
      ...(options.stream ? { stream: options.stream } : {}),
    });
    const policyLayer = answerer === "executor" ? noPolicyLayer : deps.policyLayer(options);
    const run = yield* evaluate({
      benchmarks,
      method: methods,
      resultsFile,
      answerer,
      identity,
      ...(options.samples !== undefined ? { samples: options.samples } : {}),
      ...(options.limit !== undefined ? { limit: options.limit } : {}),
      ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
      ...(options.maxTokens !== undefined ? { maxTokens: options.maxTokens } : {}),
      ...(options.maxTurns !== undefined ? { maxTurns: options.maxTurns } : {}),
      ...(options.maxEpisodeTokens !== undefined ? { maxEpisodeTokens: options.maxEpisodeTokens } : {}),
      ...(options.temperature !== undefined ? { temperature: options.temperature } : {}),
      ...(options.seed !== undefined ? { seed: options.seed } : {}),
      config: {
        model: options.model ?? null,
        answerer,
        modelFingerprint: identity.model,
        executorUrl: options.executorUrl ?? null,
        executorModel: options.executorModel ?? null,
        ...(options.executorLocal !== undefined && { executorLocal: options.executorLocal }),
        ...(answerer === "policy" && {
          policy: {
            threads: options.threads ?? availableParallelism(),
            contextSize: options.contextSize ?? DEFAULT_CONTEXT_SIZE,
            gpu: options.gpu ?? "auto",
          },
        }),
        data: options.data,
        ...(training !== undefined && {
          trainRun: training.run,
          trainDatasets: training.datasets,
          trainOverlap: overlaps,
          trainOverlapAllowed: options.allowTrainOverlap === true,
        }),
      },
      onProgress: progress.onProgress,
    }).pipe(Effect.ensuring(Effect.sync(progress.stop)), Effect.provide(Layer.merge(policyLayer, services)));
    const files = yield* Effect.tryPromise({
      try: () => writeReports(out, run.report),
      catch: (cause) =>
        new EvaluationError({ message: `cannot write the reports into ${out}: ${String(cause)}`, cause }),
    });
    for (const s of run.report.summaries)
      log(
        `eval: ${s.benchmark} / ${s.method}: EM ${(100 * s.em.mean).toFixed(1)} F1 ${(100 * s.f1.mean).toFixed(1)} over ${s.questions} questions` +
          (s.errors > 0 ? `; ${s.errors} failed` : ""),
      );
    log(
      `eval: ${run.scored} question(s) answered now, ${run.resumed} reused from ${resultsFile} (same model and settings)` +
        (run.stale > 0
          ? `; ${run.stale} earlier answer(s) there came from another model or settings and were ignored`
          : ""),
    );
    const messages = [...new Set(run.report.summaries.flatMap((s) => s.errorMessages))].map(oneLine);
    if (run.failed > 0) {
      log(`eval: ${run.failed} question(s) failed; errors:`);
      for (const message of messages.slice(0, 5)) log(`  - ${message}`);
      if (messages.some((m) => m.startsWith("ContextOverflowError")))
        log(
          `eval: the prompt does not fit the policy's context (${options.contextSize ?? DEFAULT_CONTEXT_SIZE} tokens per sequence): raise --context-size`,
        );
    }
    log(`eval: results ${resultsFile}`);
    log(`eval: reports ${files.json}, ${files.markdown}, ${files.html}`);
    if (run.results.length > 0 && run.failed === run.results.length)
      return yield* Effect.fail(
        new EvaluationError({
          message: `every question failed (${run.failed}); first error: ${messages[0] ?? "unknown"}. Results in ${resultsFile}`,
        }),
      );
    return { run, files: { ...files, results: resultsFile } };
  });

/** The policy's context per sequence when neither --context-size nor a training run says. */
export const DEFAULT_CONTEXT_SIZE = 2048;

/** A message on one line (the CLI prints an error as one line), at most 300 characters. */
const oneLine = (message: string): string => {
  const flat = message.replace(/\s+/g, " ").trim();
  return flat.length > 300 ? `${flat.slice(0, 299)}…` : flat;
};

/** The policy when the executor answers: any use is a bug, said clearly. */
const noPolicyLayer: Layer.Layer<Policy> = Layer.succeed(
  PolicyService,
  new Proxy({} as PolicyShape, {
    get: (_target, property) => () => {
      throw new Error(`no policy model (--answerer executor): ${String(property)} is unavailable`);
    },
  }),
);

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
      modelPath: options.model ?? "",
      sequences,
      contextSize: options.contextSize ?? DEFAULT_CONTEXT_SIZE,
      ...(options.gpu === undefined ? {} : { gpu: options.gpu }),
      // All cores by default: node-llama-cpp's own default (4) oversubscribes small machines.
      threads: options.threads ?? availableParallelism(),
    });
  },
  executorLayer: (options) =>
    HttpExecutor.layer({
      baseUrl: options.executorUrl,
      ...(options.executorModel === undefined ? {} : { model: options.executorModel }),
    }),
  // Its own model instance on the CPU (half the cores), one sequence per question in flight.
  localExecutorLayer: (options) =>
    LocalModelExecutor.layer(
      { model: options.executorLocal, sequences: options.concurrency ?? 4 },
      { field: "--executor-local", modelField: "--executor-local" },
    ),
  environmentLayer: (options) => workflowEnvironmentLayer(options),
};

/** The retriever for Search: BM25 over `corpus`, or a Search-R1 server; none when neither is set. */
const retrieverLayer = (options: EvalCommandOptions): Layer.Layer<Retriever, RetrieverError> | undefined => {
  if (options.corpus !== undefined) return Bm25Retriever.layer({ corpusPath: options.corpus });
  if (options.retrieverUrl !== undefined) return HttpRetriever.layer({ url: options.retrieverUrl });
  return undefined;
};

/**
 * env-qa's Workflow-R1 environment for `workflow`, over the executor in context: the paper's
 * seven closed-book operators unless `operators` says otherwise (Search needs a corpus or a
 * retrieval server).
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
  // The paper's seven closed-book operators by default; Search only when asked for.
  const operators = (requested as OperatorName[] | undefined) ?? [...PAPER_OPERATORS];
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
