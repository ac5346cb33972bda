/**
 * `workflowR1Plugin`: the paper's QA environment as a trainer plugin, wired from plain options —
 * the operators' executor (`executor.kind`: an OpenAI-compatible server, `HttpExecutor`, checked
 * once when the environment is built; or `"local"`, a GGUF in-process through llama.cpp,
 * `LocalModelExecutor`), a retriever (Search-R1 server or BM25 over a FlashRAG corpus) and FlashRAG
 * benchmark files as tasks.
 */
import {
  Environment,
  EnvironmentError,
  type EnvironmentPlugin,
  shuffled,
  type Task,
} from "@workflow-r1/core";
import { Effect, Layer, Schema } from "effect";
import {
  DEFAULT_HELD_OUT_FRACTION,
  listBenchmarks,
  loadBenchmarks,
  preferredBenchmarkFile,
  tasksInPart,
} from "./datasets/index.js";
import {
  decodeExecutorOptions,
  ExecutorOptionSchema,
  HttpExecutor,
  type HttpExecutorConfig,
  LocalModelExecutor,
  type LocalModelExecutorConfig,
} from "./executors/index.js";
import { Bm25Retriever, HttpRetriever } from "./retrieval/index.js";
import {
  checkEnvExecutor,
  makeWorkflowR1Env,
  needsRetriever,
  resolveWorkflowR1EnvConfig,
  type WorkflowR1EnvConfig,
} from "./workflow-r1-env.js";

/**
 * Options (the config's `environment.options`): the {@link WorkflowR1EnvConfig} fields, plus
 * `executor`: its `kind` picks the executor — `"http"` or none: {@link HttpExecutorConfig}
 * (`baseUrl`, `model`, `timeoutMs`, `maxRetries`, …; env `WORKFLOW_R1_EXECUTOR_*` fill the gaps);
 * `"local"`: {@link LocalModelExecutorConfig} (`model` — a GGUF path, `contextSize`, `threads`,
 * `sequences`, `gpu`, `timeoutMs`) — and either kind the environment's `temperature`, `maxTokens`,
 * `attempts`, `multiAnswerTemperature`, `maxConsecutiveFailures`. `checkExecutor` (default true:
 * the environment is not built when the executor endpoint does not answer; a local executor is
 * checked by loading its model), `retrieverUrl`
 * (a Search-R1 `/retrieve` endpoint) or `corpusPath` (FlashRAG jsonl for BM25), `dataDir` (laid out
 * like /work/shared/data/qa), `trainDatasets` (default nq, hotpotqa), `evalDatasets` (default
 * bamboogle), `trainTasks` / `evalTasks` (at most this many, shuffled by the seed; default all),
 * `heldOutFraction` (default 0.2).
 *
 * Train and eval never share a question: training reads the train part of each training dataset
 * (a stable hash of the question id, see `splitPart`), and evaluating a dataset that is also
 * trained on reads only its held-out part (the whole file otherwise). Each dataset name stands for
 * one file (`preferredBenchmarkFile`), loaded once.
 */
export interface WorkflowR1PluginOptions extends WorkflowR1EnvConfig {
  readonly executor?:
    | ((HttpExecutorConfig & { readonly kind?: "http" }) & WorkflowR1EnvConfig["executor"])
    | ((LocalModelExecutorConfig & { readonly kind: "local" }) & WorkflowR1EnvConfig["executor"]);
  readonly retrieverUrl?: string;
  readonly corpusPath?: string;
  readonly dataDir?: string;
  readonly trainDatasets?: ReadonlyArray<string>;
  readonly evalDatasets?: ReadonlyArray<string>;
  readonly trainTasks?: number;
  readonly evalTasks?: number;
  /** Share of each training dataset held out for evaluation (stable hash of the id). Default 0.2. */
  readonly heldOutFraction?: number;
}

/**
 * The option names and their types, as the plugin's `optionsSchema`: the trainer decodes
 * `environment.options` with it before a run, so a misspelt option is refused by name. Values are
 * checked further where they are used (operator names, executor settings, dataset names, ranges).
 */
export const WorkflowR1PluginOptionsSchema = Schema.Struct({
  name: Schema.optional(Schema.String),
  operators: Schema.optional(Schema.Array(Schema.String)),
  operatorBudget: Schema.optional(Schema.Int),
  maxObservationChars: Schema.optional(Schema.Int),
  executor: Schema.optional(ExecutorOptionSchema),
  searchTopK: Schema.optional(Schema.Int),
  checkExecutor: Schema.optional(Schema.Boolean),
  retrieverUrl: Schema.optional(Schema.String),
  corpusPath: Schema.optional(Schema.String),
  dataDir: Schema.optional(Schema.String),
  trainDatasets: Schema.optional(Schema.Array(Schema.String)),
  evalDatasets: Schema.optional(Schema.Array(Schema.String)),
  trainTasks: Schema.optional(Schema.Int),
  evalTasks: Schema.optional(Schema.Int),
  heldOutFraction: Schema.optional(Schema.Number),
});

const optionError = (field: string, message: string, cause?: unknown): EnvironmentError =>
  new EnvironmentError({ message: `workflow-r1 environment.options.${field}: ${message}`, cause });

const stringList = (value: unknown, field: string, fallback: ReadonlyArray<string>) =>
  value === undefined
    ? Effect.succeed(fallback)
    : Array.isArray(value) && value.every((v) => typeof v === "string")
      ? Effect.succeed(value as ReadonlyArray<string>)
      : Effect.fail(optionError(field, `expected an array of dataset names, got ${JSON.stringify(value)}`));

const layer = (raw: Readonly<Record<string, unknown>>): Layer.Layer<Environment, EnvironmentError> =>
  Layer.effect(
    Environment,
    Effect.gen(function* () {
      const options = raw as WorkflowR1PluginOptions;
      const resolved = yield* resolveWorkflowR1EnvConfig(options);
      if (options.checkExecutor !== undefined && typeof options.checkExecutor !== "boolean")
        return yield* Effect.fail(
          optionError(
            "checkExecutor",
            `expected true or false, got ${JSON.stringify(options.checkExecutor)}`,
          ),
        );
      // Its kind and fields first (a misspelt field or an unknown kind, by path).
      const chosen = yield* decodeExecutorOptions(options.executor).pipe(
        Effect.mapError((e) => new EnvironmentError({ message: `workflow-r1 ${e.message}`, cause: e })),
      );
      const retrieverUrl = typeof options.retrieverUrl === "string" ? options.retrieverUrl : undefined;
      const corpusPath = typeof options.corpusPath === "string" ? options.corpusPath : undefined;
      // Only the opt-in Search operator needs a retriever; the paper's seven are closed-book.
      const searching = needsRetriever(resolved.operators);
      if (searching && retrieverUrl === undefined && corpusPath === undefined)
        return yield* Effect.fail(
          optionError(
            "operators",
            "Search is enabled: set retrieverUrl (Search-R1 server) or corpusPath (FlashRAG jsonl for BM25), or leave Search out of operators",
          ),
        );
      // Before the retriever (a BM25 index over a large corpus takes a while to build). A local
      // executor's model is checked (a GGUF) and loaded here, freed when the layer's scope closes.
      const executor =
        chosen.kind === "local"
          ? yield* LocalModelExecutor.make(chosen.options).pipe(
              Effect.mapError((e) => new EnvironmentError({ message: `workflow-r1 ${e.message}`, cause: e })),
            )
          : yield* HttpExecutor.make(chosen.options).pipe(
              Effect.mapError((e) => optionError("executor", e.message, e)),
            );
      if (options.checkExecutor !== false)
        yield* checkEnvExecutor(executor).pipe(
          Effect.mapError((e) => optionError("executor", e.message, e.cause)),
        );
      const retriever = !searching
        ? undefined
        : retrieverUrl !== undefined
          ? yield* HttpRetriever.make({ url: retrieverUrl }).pipe(
              Effect.mapError((e) => optionError("retrieverUrl", e.message, e)),
            )
          : yield* Bm25Retriever.make({ corpusPath: corpusPath ?? "" }).pipe(
              Effect.mapError((e) => optionError("corpusPath", e.message, e)),
            );
      return makeWorkflowR1Env(resolved, executor, retriever);
    }),
  );

/** The training datasets by default: NQ and HotpotQA, as the authors train. */
export const DEFAULT_TRAIN_DATASETS: ReadonlyArray<string> = ["nq", "hotpotqa"];
/** The in-training held-out datasets by default. */
export const DEFAULT_EVAL_DATASETS: ReadonlyArray<string> = ["bamboogle"];

/** The files that dataset names stand for (no loading). */
const loadBenchmarkFiles = (dataDir: string, names: ReadonlyArray<string>) =>
  Effect.map(listBenchmarks(dataDir), (files) =>
    names.flatMap((n) => {
      const file = files.find((f) => f.name === n) ?? preferredBenchmarkFile(files, n);
      return file === undefined ? [] : [file];
    }),
  );

const tasks = (
  raw: Readonly<Record<string, unknown>>,
  split: "train" | "eval",
  seed: number,
): Effect.Effect<ReadonlyArray<Task>, EnvironmentError> =>
  Effect.gen(function* () {
    const dataDir = raw["dataDir"];
    if (typeof dataDir !== "string" || dataDir === "")
      return yield* Effect.fail(optionError("dataDir", "expected the path of a FlashRAG data directory"));
    const fraction = raw["heldOutFraction"] ?? DEFAULT_HELD_OUT_FRACTION;
    if (typeof fraction !== "number" || !(fraction > 0 && fraction < 1))
      return yield* Effect.fail(
        optionError(
          "heldOutFraction",
          `expected a number between 0 and 1 (exclusive), got ${JSON.stringify(fraction)}`,
        ),
      );
    const trainNames = yield* stringList(raw["trainDatasets"], "trainDatasets", DEFAULT_TRAIN_DATASETS);
    const field = split === "train" ? "trainDatasets" : "evalDatasets";
    const names =
      split === "train" ? trainNames : yield* stringList(raw[field], field, DEFAULT_EVAL_DATASETS);
    const benchmarks = yield* loadBenchmarks(dataDir, names, { searchR1Question: true }).pipe(
      Effect.mapError((e) => optionError(field, e.message, e)),
    );
    const trainedOn =
      split === "train"
        ? new Set(benchmarks.map((b) => b.dataset))
        : new Set(
            (yield* loadBenchmarkFiles(dataDir, trainNames).pipe(
              Effect.mapError((e) => optionError("trainDatasets", e.message, e)),
            )).map((b) => b.dataset),
          );
    const all = shuffled(
      benchmarks.flatMap((b) =>
        split === "train"
          ? tasksInPart(b.tasks, "train", fraction)
          : trainedOn.has(b.dataset)
            ? tasksInPart(b.tasks, "held-out", fraction)
            : b.tasks,
      ),
      seed,
    );
    const countField = split === "train" ? "trainTasks" : "evalTasks";
    const count = raw[countField];
    if (count === undefined) return all;
    if (typeof count !== "number" || !Number.isInteger(count) || count < 1)
      return yield* Effect.fail(
        optionError(countField, `expected a positive integer, got ${JSON.stringify(count)}`),
      );
    return all.slice(0, count);
  });

/** The paper's QA environment for `workflow-r1 train --env workflow-r1` (needs an executor LLM). */
export const workflowR1Plugin: EnvironmentPlugin = {
  name: "workflow-r1",
  description:
    "The Workflow-R1 QA environment: the paper's seven closed-book operators on an executor LLM (Search opt-in), FlashRAG benchmarks, format + EM reward.",
  layer,
  tasks,
  optionsSchema: WorkflowR1PluginOptionsSchema,
};
