/**
 * Per-question results and their aggregation into per-benchmark summaries.
 */
import {
  type BootstrapOptions,
  bootstrapMean,
  type Estimate,
  mean,
  passAtK,
  passKLadder,
} from "./statistics.js";

/** One sampled answer to a question. */
export interface SampleResult {
  /** The extracted final answer, or null when the output had none. */
  readonly prediction: string | null;
  readonly em: number;
  readonly subEm: number;
  readonly f1: number;
  /** 1 when the output follows the method's tag format, else 0. */
  readonly format: number;
  readonly turns: number;
  /** Tokens the policy sampled for this answer (all turns). */
  readonly tokens: number;
  /** Operator calls made in this episode, by operator name. */
  readonly operatorCalls: Readonly<Record<string, number>>;
  readonly finishReason: string;
  readonly error?: string;
  /** Everything the model wrote for this answer (all turns), as sampled. */
  readonly text?: string;
}

/** Everything recorded for one question of one benchmark under one method (one jsonl line). */
export interface QuestionResult {
  readonly benchmark: string;
  readonly method: string;
  readonly taskId: string;
  readonly question: string;
  readonly goldenAnswers: ReadonlyArray<string>;
  /** The method's final answer: the majority vote for `sc`, the first sample otherwise. */
  readonly prediction: string | null;
  /** Scores of the method's answer: the voted answer for `sc`, mean@k over the samples otherwise. */
  readonly em: number;
  readonly subEm: number;
  readonly f1: number;
  readonly format: number;
  readonly turns: number;
  readonly tokens: number;
  readonly operatorCalls: Readonly<Record<string, number>>;
  readonly samples: ReadonlyArray<SampleResult>;
  readonly elapsedMs: number;
  /**
   * What determined the answer (model file, method, sampling settings, operators…), hashed: a
   * re-run reuses a result only under the same key. See `evaluationKey`.
   */
  readonly configKey?: string;
  /** Every sample failed with an error: kept for the record, retried by the next run. */
  readonly failed?: boolean;
}

/** Aggregated scores of one method on one benchmark. */
export interface BenchmarkSummary {
  readonly benchmark: string;
  readonly method: string;
  readonly questions: number;
  /** Samples per question (k). */
  readonly samples: number;
  readonly em: Estimate;
  readonly subEm: Estimate;
  readonly f1: Estimate;
  readonly format: Estimate;
  readonly turns: Estimate;
  readonly tokens: Estimate;
  /** Mean operator calls per episode, by operator. */
  readonly operatorCalls: Readonly<Record<string, Estimate>>;
  /** Unbiased pass@k of EM for k in 1, 2, 4, …, samples (keys are k). */
  readonly passAtK: Readonly<Record<string, number>>;
  /** mean@k of EM: the mean over questions of the mean EM of their k samples. */
  readonly meanAtK: number;
  /** Questions whose samples all failed with an error (scored 0). */
  readonly errors: number;
  /** The distinct error messages of failed samples (at most 5), for the console and the report. */
  readonly errorMessages: ReadonlyArray<string>;
}

const sampleAverage = (samples: ReadonlyArray<SampleResult>, pick: (s: SampleResult) => number): number =>
  samples.length === 0 ? 0 : mean(samples.map(pick));

/** Mean operator calls per sample, by operator, over a question's samples. */
export const averageOperatorCalls = (samples: ReadonlyArray<SampleResult>): Record<string, number> => {
  const totals: Record<string, number> = {};
  for (const sample of samples)
    for (const [operator, count] of Object.entries(sample.operatorCalls))
      totals[operator] = (totals[operator] ?? 0) + count;
  for (const operator of Object.keys(totals))
    totals[operator] = totals[operator]! / Math.max(1, samples.length);
  return totals;
};

/** Per-question averages of the samples' scores (mean@k), for methods without an answer vote. */
export const averageSamples = (
  samples: ReadonlyArray<SampleResult>,
): Pick<QuestionResult, "em" | "subEm" | "f1" | "format" | "turns" | "tokens" | "operatorCalls"> => ({
  em: sampleAverage(samples, (s) => s.em),
  subEm: sampleAverage(samples, (s) => s.subEm),
  f1: sampleAverage(samples, (s) => s.f1),
  format: sampleAverage(samples, (s) => s.format),
  turns: sampleAverage(samples, (s) => s.turns),
  tokens: sampleAverage(samples, (s) => s.tokens),
  operatorCalls: averageOperatorCalls(samples),
});

/** Aggregate one benchmark × method: means with seeded bootstrap intervals, pass@k and mean@k. */
export const summarize = (
  benchmark: string,
  method: string,
  results: ReadonlyArray<QuestionResult>,
  bootstrap: BootstrapOptions = {},
): BenchmarkSummary => {
  const estimate = (pick: (r: QuestionResult) => number) => bootstrapMean(results.map(pick), bootstrap);
  const operators = [...new Set(results.flatMap((r) => Object.keys(r.operatorCalls)))].sort();
  const operatorCalls: Record<string, Estimate> = {};
  for (const operator of operators) operatorCalls[operator] = estimate((r) => r.operatorCalls[operator] ?? 0);
  const samples = results.length === 0 ? 0 : Math.min(...results.map((r) => r.samples.length));
  const pass: Record<string, number> = {};
  if (samples > 0)
    for (const k of passKLadder(samples))
      pass[String(k)] = mean(
        results.map((r) => {
          const correct = r.samples.filter((s) => s.em > 0).length;
          return passAtK(r.samples.length, correct, k);
        }),
      );
  return {
    benchmark,
    method,
    questions: results.length,
    samples,
    em: estimate((r) => r.em),
    subEm: estimate((r) => r.subEm),
    f1: estimate((r) => r.f1),
    format: estimate((r) => r.format),
    turns: estimate((r) => r.turns),
    tokens: estimate((r) => r.tokens),
    operatorCalls,
    passAtK: pass,
    meanAtK:
      results.length === 0 ? Number.NaN : mean(results.map((r) => sampleAverage(r.samples, (s) => s.em))),
    errors: results.filter((r) => r.samples.length > 0 && r.samples.every((s) => s.error !== undefined))
      .length,
    errorMessages: [
      ...new Set(results.flatMap((r) => r.samples.flatMap((s) => (s.error === undefined ? [] : [s.error])))),
    ].slice(0, 5),
  };
};

/** Group results by benchmark and method and summarise each group, in first-seen order. */
export const summarizeAll = (
  results: ReadonlyArray<QuestionResult>,
  bootstrap: BootstrapOptions = {},
): BenchmarkSummary[] => {
  const groups = new Map<string, QuestionResult[]>();
  for (const result of results) {
    const key = `${result.benchmark}\u0000${result.method}`;
    const group = groups.get(key);
    if (group) group.push(result);
    else groups.set(key, [result]);
  }
  return [...groups.values()].map((group) =>
    summarize(group[0]!.benchmark, group[0]!.method, group, bootstrap),
  );
};
