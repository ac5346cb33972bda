/**
 * Disjoint train / held-out parts of a benchmark file, by a stable hash of each question's id.
 *
 * The shared QA data holds only evaluation splits (NQ test, HotpotQA dev, …), so training on a
 * dataset means training on part of an evaluation file. Every question is assigned once and for
 * all to the train or the held-out part by SHA-256 of `workflow-r1/split-v1:<dataset>:<id>`, so
 * the assignment does not depend on the file's order, on which file of a dataset is read
 * (`hotpotqa/dev.sample500` ⊂ `hotpotqa/dev` gets the same parts) or on the run's seed. Training
 * reads only the train part; evaluation of a dataset the run trained on reads only the held-out
 * part.
 */
import { createHash } from "node:crypto";
import type { Task } from "@workflow-r1/core";

/** The share of each trained-on dataset kept for evaluation by default. */
export const DEFAULT_HELD_OUT_FRACTION = 0.2;

export type SplitPart = "train" | "held-out";

/** A number in [0, 1) fixed by the dataset and the question id. */
export const splitKey = (dataset: string, id: string): number =>
  createHash("sha256").update(`workflow-r1/split-v1:${dataset}:${id}`).digest().readUInt32BE(0) / 2 ** 32;

/** Which part a question belongs to when `heldOutFraction` of its dataset is held out. */
export const splitPart = (
  dataset: string,
  id: string,
  heldOutFraction = DEFAULT_HELD_OUT_FRACTION,
): SplitPart => (splitKey(dataset, id) < heldOutFraction ? "held-out" : "train");

const datasetOf = (task: Task): string => {
  const dataset = task.metadata?.["dataset"];
  return typeof dataset === "string" ? dataset : "";
};

/** The tasks of one part (the dataset comes from `task.metadata.dataset`, as the loaders set it). */
export const tasksInPart = (
  tasks: ReadonlyArray<Task>,
  part: SplitPart,
  heldOutFraction = DEFAULT_HELD_OUT_FRACTION,
): Task[] => tasks.filter((task) => splitPart(datasetOf(task), task.id, heldOutFraction) === part);

export interface BenchmarkFileRef {
  /** `<dataset>/<file name without .jsonl>`, e.g. `hotpotqa/dev.sample500`. */
  readonly name: string;
  readonly dataset: string;
}

/**
 * Rank of a file among its dataset's files: a complete split (`test`, `dev`) first, then a sample
 * that keeps every golden alias (`dev.sample500`), then anything else (e.g. `dev.primary_only`,
 * whose single golden answer understates EM).
 */
export const benchmarkFileRank = (file: BenchmarkFileRef): number => {
  const variant = file.name
    .slice(file.dataset.length + 1)
    .split(".")
    .slice(1)
    .join(".");
  if (variant === "") return 0;
  if (variant.startsWith("sample")) return 1;
  return 2;
};

/** The one file a dataset name stands for (see {@link benchmarkFileRank}); undefined when none. */
export const preferredBenchmarkFile = <F extends BenchmarkFileRef>(
  files: ReadonlyArray<F>,
  dataset: string,
): F | undefined =>
  files
    .filter((f) => f.dataset === dataset)
    .sort((a, b) => benchmarkFileRank(a) - benchmarkFileRank(b) || a.name.localeCompare(b.name))[0];
