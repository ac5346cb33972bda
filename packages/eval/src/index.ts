/**
 * @workflow-r1/eval — measure a policy on QA benchmarks the way the Workflow-R1 paper does.
 */

export * from "./chart-page.js";
export * from "./report.js";
export * from "./results.js";
export * from "./statistics.js";
