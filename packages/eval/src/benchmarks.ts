/**
 * Choosing benchmark files in a FlashRAG data directory (layout `<dataset>/<split>[.<variant>].jsonl`,
 * as in /work/shared/data/qa). Loading itself is env-qa's `listBenchmarks` / `loadBenchmarks`.
 */

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

/**
 * Rank of a file among its dataset's files: a complete split (`test`, `dev`) first, then a sample
 * that keeps every golden alias (`dev.sample500`), then anything else (e.g. `dev.primary_only`,
 * whose single golden answer understates EM).
 */
const fileRank = (file: BenchmarkFileInfo): number => {
  const variant = file.name
    .slice(file.dataset.length + 1)
    .split(".")
    .slice(1)
    .join(".");
  if (variant === "") return 0;
  if (variant.startsWith("sample")) return 1;
  return 2;
};

export interface SelectedBenchmark {
  /** The name shown in reports: the dataset when picked by dataset, else the file's full name. */
  readonly label: string;
  readonly file: BenchmarkFileInfo;
}

/**
 * Pick one file per requested name. A dataset name (`hotpotqa`) takes that dataset's preferred
 * file (see above); a full name (`musique/dev.primary_only`) takes that file. Without names, one
 * file per dataset present, in the paper's order. Unknown names are returned in `unknown`.
 */
export const selectBenchmarks = (
  files: ReadonlyArray<BenchmarkFileInfo>,
  names?: ReadonlyArray<string>,
): { readonly selected: SelectedBenchmark[]; readonly unknown: string[] } => {
  const preferred = (dataset: string) =>
    files
      .filter((f) => f.dataset === dataset)
      .sort((a, b) => fileRank(a) - fileRank(b) || a.name.localeCompare(b.name))[0];
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
