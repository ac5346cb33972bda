/**
 * The benchmark runner: every selected question of every benchmark, answered by each method,
 * scored, appended to a resumable results file, and summarised into a report.
 */
import { createHash } from "node:crypto";
import type { Policy, Task } from "@workflow-r1/core";
import { Effect, Semaphore } from "effect";
import { EvaluationError, type ResultsFileError } from "./errors.js";
import type { MethodDefinition, MethodOutput, MethodSettings } from "./methods.js";
import { scorePrediction } from "./metrics.js";
import { getMethod } from "./registry.js";
import type { EvalReport } from "./report.js";
import {
  averageOperatorCalls,
  averageSamples,
  type BenchmarkSummary,
  type QuestionResult,
  type SampleResult,
  summarize,
} from "./results.js";
import { appendResult, readResults, resultKey } from "./results-file.js";
import type { BootstrapOptions } from "./statistics.js";

/** A named list of questions (one FlashRAG jsonl file). */
export interface Benchmark {
  readonly name: string;
  readonly tasks: ReadonlyArray<Task>;
  /** Where the tasks were read from, recorded in the report. */
  readonly file?: string;
}

export interface ProgressEvent {
  readonly benchmark: string;
  readonly method: string;
  /** Questions of this benchmark × method finished so far (resumed ones included). */
  readonly done: number;
  readonly total: number;
  /** Questions taken from the results file instead of being scored again. */
  readonly resumed: number;
  /** The question just scored (absent on the first event of a benchmark × method). */
  readonly result?: QuestionResult;
}

export interface EvaluateOptions {
  readonly benchmarks: ReadonlyArray<Benchmark>;
  /** A method name, or several: each runs on every benchmark. */
  readonly method: string | ReadonlyArray<string>;
  /** Samples per question (default: the method's default, else 1). */
  readonly samples?: number;
  /** Only the first N questions of each benchmark. */
  readonly limit?: number;
  /** jsonl of per-question results: read to skip scored questions, appended as questions finish. */
  readonly resultsFile?: string;
  /** Questions in flight at once (default 4): the policy batches their sequences together. */
  readonly concurrency?: number;
  /** Tokens per turn (default 512). */
  readonly maxTokens?: number;
  /** Turns per episode for agent methods (default: the method's, else 8; workflow: 21). */
  readonly maxTurns?: number;
  /** Tokens per episode for agent methods, observations included (default 8192, the authors' limit). */
  readonly maxEpisodeTokens?: number;
  /** Who answers direct / cot / sc: the policy (default) or the executor endpoint in context. */
  readonly answerer?: "policy" | "executor";
  /** Default: the method's, else 0 (greedy) for one sample and 1 for several. */
  readonly temperature?: number;
  readonly topP?: number;
  readonly topK?: number;
  readonly seed?: number;
  readonly bootstrap?: BootstrapOptions;
  /** Extra settings to record in the report (model path, executor URL, …). */
  readonly config?: Readonly<Record<string, unknown>>;
  /**
   * What else determines an answer besides the method and its settings (e.g. the model file's
   * fingerprint, the executor's model, the operator set): part of every result's `configKey`.
   */
  readonly identity?: Readonly<Record<string, unknown>>;
  readonly onProgress?: (event: ProgressEvent) => void;
}

export interface EvalRun {
  readonly report: EvalReport;
  /** Questions whose every sample failed with an error (recorded, retried by the next run). */
  readonly failed: number;
  /** Results of the selected questions, in benchmark, method, question order. */
  readonly results: ReadonlyArray<QuestionResult>;
  /** Questions scored in this run. */
  readonly scored: number;
  /** Questions taken from the results file. */
  readonly resumed: number;
  /**
   * Questions the results file answers only under another key (another model, method setting,
   * executor model…): ignored, and answered again.
   */
  readonly stale: number;
}

const positiveInteger = (value: number | undefined, field: string): Effect.Effect<void, EvaluationError> =>
  value === undefined || (Number.isInteger(value) && value > 0)
    ? Effect.void
    : Effect.fail(
        new EvaluationError({ message: `${field} must be a positive integer, got ${value}`, field }),
      );

/** Settings of one method after applying defaults. */
export const methodSettings = (definition: MethodDefinition, options: EvaluateOptions): MethodSettings => {
  const samples = options.samples ?? definition.defaultSamples ?? 1;
  return {
    samples,
    maxTokens: options.maxTokens ?? 512,
    maxTurns: options.maxTurns ?? definition.defaultMaxTurns ?? 8,
    maxEpisodeTokens: options.maxEpisodeTokens ?? 8192,
    temperature: options.temperature ?? definition.defaultTemperature ?? (samples > 1 ? 1 : 0),
    topP: options.topP ?? 1,
    topK: options.topK ?? 0,
    seed: options.seed ?? 0,
    concurrency: Math.max(1, Math.min(samples, options.concurrency ?? 4)),
    answerer: options.answerer ?? "policy",
  };
};

/** Score a method's output on a task into the record kept per question. */
export const scoreQuestion = (
  benchmark: string,
  method: string,
  task: Task,
  output: MethodOutput,
  elapsedMs: number,
): QuestionResult => {
  const golden = task.goldenAnswers ?? [];
  const samples: SampleResult[] = output.samples.map((s) => ({
    prediction: s.prediction,
    ...scorePrediction(s.prediction, golden),
    format: s.format,
    turns: s.turns,
    tokens: s.tokens,
    operatorCalls: s.operatorCalls,
    finishReason: s.finishReason,
    ...(s.error === undefined ? {} : { error: s.error }),
    text: s.text,
  }));
  const averaged = averageSamples(samples);
  const base = {
    benchmark,
    method,
    taskId: task.id,
    question: task.question,
    goldenAnswers: golden,
    samples,
    elapsedMs,
  };
  if (output.answer) {
    // One aggregated answer (e.g. a vote): score it; its cost is every sample's tokens.
    return {
      ...base,
      prediction: output.answer.prediction,
      ...scorePrediction(output.answer.prediction, golden),
      format: averaged.format,
      turns: averaged.turns,
      tokens: samples.reduce((a, s) => a + s.tokens, 0),
      operatorCalls: averageOperatorCalls(samples),
    };
  }
  return { ...base, prediction: samples[0]?.prediction ?? null, ...averaged };
};

/**
 * The key of every result of one method under these options: a hash of the identity (model
 * fingerprint, executor model, operators…), the method and its settings (samples, temperature,
 * top-p/k, seed, token and turn limits). Concurrency is left out: it does not change answers.
 */
export const evaluationKey = (
  method: string,
  settings: MethodSettings,
  identity: Readonly<Record<string, unknown>> = {},
): string => {
  const { concurrency: _concurrency, ...answering } = settings;
  const canonical = JSON.stringify({ identity, method, settings: answering }, (_key, value) =>
    value && typeof value === "object" && !Array.isArray(value)
      ? Object.fromEntries(Object.entries(value).sort(([a], [b]) => a.localeCompare(b)))
      : value,
  );
  return createHash("sha256").update(canonical).digest("hex").slice(0, 16);
};

/** A method that died with a defect (a thrown exception) on one question: every sample failed. */
const crashedOutput = (defect: unknown, samples: number): MethodOutput => {
  const message = defect instanceof Error ? `${defect.name}: ${defect.message}` : String(defect);
  return {
    samples: Array.from({ length: samples }, () => ({
      text: "",
      prediction: null,
      format: 0,
      turns: 0,
      tokens: 0,
      operatorCalls: {},
      finishReason: "error",
      error: `crashed: ${message}`,
    })),
  };
};

const allFailed = (result: QuestionResult): boolean =>
  result.samples.length > 0 && result.samples.every((s) => s.error !== undefined);

/**
 * Evaluate methods on benchmarks with the `Policy` in context. Agent methods that need an
 * `Executor` (or an `Environment`) read them from context too. Questions already in
 * `resultsFile` are not scored again; questions whose every sample failed are reported but not
 * written, so a re-run retries them.
 */
export const evaluate = (
  options: EvaluateOptions,
): Effect.Effect<EvalRun, EvaluationError | ResultsFileError, Policy> =>
  Effect.gen(function* () {
    const methods = typeof options.method === "string" ? [options.method] : [...options.method];
    if (methods.length === 0)
      return yield* Effect.fail(new EvaluationError({ message: "no method given", field: "method" }));
    if (options.benchmarks.length === 0)
      return yield* Effect.fail(new EvaluationError({ message: "no benchmark given", field: "benchmarks" }));
    yield* positiveInteger(options.samples, "samples");
    yield* positiveInteger(options.limit, "limit");
    yield* positiveInteger(options.concurrency, "concurrency");
    yield* positiveInteger(options.maxTokens, "maxTokens");
    yield* positiveInteger(options.maxTurns, "maxTurns");
    const definitions = yield* Effect.forEach(methods, getMethod);

    const previous = options.resultsFile ? yield* readResults(options.resultsFile, { repair: true }) : [];
    const known = new Map(previous.map((r) => [resultKey(r), r]));
    // Questions with a record under any key: those not reused were answered under another one.
    const anyKey = new Set(previous.map((r) => resultKey({ ...r, configKey: "" })));
    const writeLock = yield* Semaphore.make(1);

    const results: QuestionResult[] = [];
    const summaries: BenchmarkSummary[] = [];
    const settingsByMethod: Record<string, MethodSettings> = {};
    let scored = 0;
    let resumed = 0;
    let stale = 0;

    for (const benchmark of options.benchmarks) {
      const tasks = options.limit === undefined ? benchmark.tasks : benchmark.tasks.slice(0, options.limit);
      for (const [m, method] of methods.entries()) {
        const definition = definitions[m]!;
        const settings = methodSettings(definition, options);
        settingsByMethod[method] = settings;
        const configKey = evaluationKey(method, settings, options.identity);
        const done: Array<QuestionResult | undefined> = tasks.map((task) => {
          const hit = known.get(resultKey({ benchmark: benchmark.name, method, taskId: task.id, configKey }));
          // A failed question is retried; a record made with another number of samples answers a
          // different question: re-score.
          return hit && !hit.failed && hit.samples.length === settings.samples ? hit : undefined;
        });
        const skipped = done.filter((r) => r !== undefined).length;
        resumed += skipped;
        stale += tasks.filter(
          (task, index) =>
            done[index] === undefined &&
            anyKey.has(resultKey({ benchmark: benchmark.name, method, taskId: task.id, configKey: "" })) &&
            !known.has(resultKey({ benchmark: benchmark.name, method, taskId: task.id, configKey })),
        ).length;
        let finished = skipped;
        options.onProgress?.({
          benchmark: benchmark.name,
          method,
          done: finished,
          total: tasks.length,
          resumed: skipped,
        });
        const pending = tasks.flatMap((task, index) => (done[index] === undefined ? [{ task, index }] : []));
        yield* Effect.forEach(
          pending,
          ({ task, index }) =>
            Effect.gen(function* () {
              const started = performance.now();
              // A thrown exception fails this question (recorded with its message), not the run.
              const output = yield* definition
                .run(task, settings)
                .pipe(
                  Effect.catchDefect((defect) => Effect.succeed(crashedOutput(defect, settings.samples))),
                );
              const scoredResult = scoreQuestion(
                benchmark.name,
                method,
                task,
                output,
                performance.now() - started,
              );
              const result: QuestionResult = {
                ...scoredResult,
                configKey,
                ...(allFailed(scoredResult) && { failed: true }),
              };
              // Failed questions are written too (with their error messages), and retried next run.
              if (options.resultsFile)
                yield* writeLock.withPermits(1)(appendResult(options.resultsFile, result));
              done[index] = result;
              scored++;
              finished++;
              options.onProgress?.({
                benchmark: benchmark.name,
                method,
                done: finished,
                total: tasks.length,
                resumed: skipped,
                result,
              });
            }),
          { concurrency: options.concurrency ?? 4, discard: true },
        );
        const own = done as QuestionResult[];
        results.push(...own);
        summaries.push(summarize(benchmark.name, method, own, options.bootstrap));
      }
    }

    const report: EvalReport = {
      config: {
        ...options.config,
        methods,
        benchmarks: options.benchmarks.map((b) => ({
          name: b.name,
          ...(b.file ? { file: b.file } : {}),
          questions: b.tasks.length,
        })),
        limit: options.limit ?? null,
        settings: settingsByMethod,
        bootstrap: { resamples: 1000, confidence: 0.95, seed: 0, ...options.bootstrap },
        resultsFile: options.resultsFile ?? null,
      },
      createdAt: new Date().toISOString(),
      summaries,
    };
    return { report, results, scored, resumed, stale, failed: results.filter(allFailed).length };
  });
