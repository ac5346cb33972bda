export {
  type Benchmark,
  type BenchmarkFile,
  type LoadBenchmarksOptions,
  listBenchmarks,
  loadBenchmarks,
} from "./benchmarks.js";
export {
  FlashRagRecord,
  flashRagTask,
  type LoadOptions,
  loadFlashRagJsonl,
  searchR1Question,
  streamFlashRagJsonl,
} from "./flashrag.js";
export { type JsonlRecord, streamJsonl } from "./jsonl.js";
export { loadSearchR1Parquet, SearchR1Row, searchR1Task } from "./parquet.js";
export {
  type BenchmarkFileRef,
  benchmarkFileRank,
  DEFAULT_HELD_OUT_FRACTION,
  preferredBenchmarkFile,
  type SplitPart,
  splitKey,
  splitPart,
  tasksInPart,
} from "./split.js";
