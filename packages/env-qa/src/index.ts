export * from "./datasets/index.js";
export * from "./executors/index.js";
export * from "./metrics.js";
export * from "./retrieval/index.js";
export * from "./reward.js";
