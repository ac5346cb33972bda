/**
 * @workflow-r1/eval — measure a policy on QA benchmarks the way the Workflow-R1 paper does.
 */

export * from "./answers.js";
export * from "./benchmarks.js";
export * from "./chart-page.js";
export * from "./command.js";
export * from "./errors.js";
export * from "./identity.js";
export * from "./methods.js";
export * from "./metrics.js";
export * from "./progress.js";
export * from "./registry.js";
export * from "./report.js";
export * from "./results.js";
export * from "./results-file.js";
export * from "./runner.js";
export * from "./statistics.js";
export * from "./workflow.js";
