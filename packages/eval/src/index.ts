/**
 * @workflow-r1/eval — measure a policy on QA benchmarks the way the Workflow-R1 paper does.
 * The public API (see the README) is listed here; bookkeeping behind it (result keys' inputs, model
 * fingerprints, training-set detection) stays internal.
 */
export { cotFormatValid, directFormatValid, extractAnswer, majorityVote } from "./answers.js";
export {
  type BenchmarkFileInfo,
  paperBenchmarkOrder,
  type SelectedBenchmark,
  selectBenchmarks,
} from "./benchmarks.js";
export {
  defaultEvalCommandDeps,
  type EvalCommandDeps,
  type EvalCommandOptions,
  type EvalCommandResult,
  evalCommand,
  loadEvalBenchmarks,
  runEvalCommand,
  splitList,
  workflowEnvironmentLayer,
} from "./command.js";
export { EvaluationError, ResultsFileError } from "./errors.js";
export {
  cotMethod,
  cotPrompt,
  directMethod,
  directPrompt,
  hashString,
  type MethodDefinition,
  type MethodOutput,
  type MethodSettings,
  type SampleOutput,
  sampleSeed,
  sampleSingleTurn,
  selfConsistencyMethod,
} from "./methods.js";
export {
  exactMatch,
  f1Score,
  formatScore,
  normalizeAnswer,
  scorePrediction,
  subExactMatch,
  workflowR1Reward,
} from "./metrics.js";
export { decodeEvalOptions, EvalOptions } from "./options.js";
export {
  createEvalProgress,
  type EvalProgress,
  type ProgressMode,
  type ProgressOptions,
} from "./progress.js";
export { getMethod, methodNames, registerMethod } from "./registry.js";
export {
  type EvalReport,
  type ReportFiles,
  renderHtml,
  renderJson,
  renderMarkdown,
  reportPage,
  writeReports,
} from "./report.js";
export {
  averageSamples,
  type BenchmarkSummary,
  type QuestionResult,
  type SampleResult,
  summarize,
  summarizeAll,
} from "./results.js";
export { appendResult, readResults, resultKey } from "./results-file.js";
export {
  type Benchmark,
  type EvalRun,
  type EvaluateOptions,
  evaluate,
  methodSettings,
  type ProgressEvent,
  scoreQuestion,
} from "./runner.js";
export {
  type BootstrapOptions,
  bootstrapMean,
  type Estimate,
  mean,
  meanAtK,
  passAtK,
  passKLadder,
  quantileSorted,
} from "./statistics.js";
export { episodeSample, workflowFormatValid, workflowMethod } from "./workflow.js";
