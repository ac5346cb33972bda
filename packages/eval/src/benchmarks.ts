/**
 * Choosing benchmark files in a FlashRAG data directory (layout `<dataset>/<split>[.<variant>].jsonl`,
 * as in /work/shared/data/qa). Loading itself is env-qa's `listBenchmarks` / `loadBenchmarks`.
 */
import { preferredBenchmarkFile } from "@workflow-r1/env-qa";

/** What env-qa's `listBenchmarks` reports per file. */
export interface BenchmarkFileInfo {
  /** `<dataset>/<file name without .jsonl>`, e.g. `hotpotqa/dev.sample500`. */
  readonly name: string;
  readonly dataset: string;
  readonly file: string;
}

/** The paper's benchmark order (general QA, then multi-hop QA). */
export const paperBenchmarkOrder = [
  "nq",
  "triviaqa",
  "popqa",
  "hotpotqa",
  "2wikimultihopqa",
  "musique",
  "bamboogle",
];

export interface SelectedBenchmark {
  /** The name shown in reports: the dataset when picked by dataset, else the file's full name. */
  readonly label: string;
  readonly file: BenchmarkFileInfo;
}

/**
 * Pick one file per requested name. A dataset name (`hotpotqa`) takes that dataset's preferred
 * file (env-qa's `preferredBenchmarkFile`: a complete split, then a sample that keeps every golden
 * alias, then anything else); a full name (`musique/dev.primary_only`) takes that file. Without names, one
 * file per dataset present, in the paper's order. Unknown names are returned in `unknown`.
 */
export const selectBenchmarks = (
  files: ReadonlyArray<BenchmarkFileInfo>,
  names?: ReadonlyArray<string>,
): { readonly selected: SelectedBenchmark[]; readonly unknown: string[] } => {
  // The same file env-qa's loaders and the trainer take for a dataset name.
  const preferred = (dataset: string) => preferredBenchmarkFile(files, dataset);
  if (names === undefined) {
    const datasets = [...new Set(files.map((f) => f.dataset))].sort((a, b) => {
      const ia = paperBenchmarkOrder.indexOf(a);
      const ib = paperBenchmarkOrder.indexOf(b);
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
    });
    return { selected: datasets.map((d) => ({ label: d, file: preferred(d)! })), unknown: [] };
  }
  const selected: SelectedBenchmark[] = [];
  const unknown: string[] = [];
  for (const name of names) {
    const exact = files.find((f) => f.name === name);
    const byDataset = exact ? undefined : preferred(name);
    if (exact) selected.push({ label: name, file: exact });
    else if (byDataset) selected.push({ label: name, file: byDataset });
    else unknown.push(name);
  }
  return { selected, unknown };
};
