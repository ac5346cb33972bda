/**
 * Find and load the FlashRAG QA files of a data directory laid out like `/work/shared/data/qa`:
 * `<dataset>/<split>[.<variant>].jsonl`, with an optional `manifest.json` listing path and row count.
 */
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { DatasetError, type Task } from "@workflow-r1/core";
import { Effect, Result, Schema } from "effect";
import { defaultDataset, defaultSplit, loadFlashRagJsonl } from "./flashrag.js";
import { preferredBenchmarkFile } from "./split.js";

const Manifest = Schema.Array(
  Schema.Struct({ path: Schema.String, rows: Schema.Number, bytes: Schema.optional(Schema.Number) }),
);

export interface BenchmarkFile {
  /** `<dataset>/<file name without .jsonl>`, e.g. `hotpotqa/dev.sample500`. */
  readonly name: string;
  readonly dataset: string;
  readonly split: string;
  readonly file: string;
  /** Row count from the manifest, when there is one. */
  readonly rows?: number;
}

export interface Benchmark extends BenchmarkFile {
  readonly tasks: ReadonlyArray<Task>;
}

/** List the benchmark files of `dataDir` (from manifest.json, or by scanning `*\/*.jsonl`). */
export const listBenchmarks = (dataDir: string): Effect.Effect<BenchmarkFile[], DatasetError> =>
  Effect.gen(function* () {
    const manifestPath = path.join(dataDir, "manifest.json");
    const manifestText = yield* Effect.tryPromise({
      try: () => readFile(manifestPath, "utf8"),
      catch: () => undefined,
    }).pipe(Effect.orElseSucceed(() => undefined));
    let entries: { path: string; rows?: number }[];
    if (manifestText !== undefined) {
      let json: unknown;
      try {
        json = JSON.parse(manifestText);
      } catch (cause) {
        return yield* new DatasetError({
          message: `${manifestPath}: not valid JSON (${String(cause)})`,
          file: manifestPath,
        });
      }
      const decoded = Schema.decodeUnknownResult(Manifest)(json);
      if (Result.isFailure(decoded)) {
        return yield* new DatasetError({
          message: `${manifestPath}: expected [{path, rows}] (${decoded.failure.message.replace(/\s+/g, " ")})`,
          file: manifestPath,
        });
      }
      entries = decoded.success
        .filter((e) => e.path.endsWith(".jsonl"))
        .map((e) => ({ path: e.path, rows: e.rows }));
    } else {
      const found = yield* Effect.tryPromise({
        try: () => readdir(dataDir, { recursive: true }),
        catch: (cause) =>
          new DatasetError({ message: `${dataDir}: cannot list (${String(cause)})`, file: dataDir }),
      });
      entries = found
        .filter((p) => p.endsWith(".jsonl") && p.split(path.sep).length === 2)
        .sort()
        .map((p) => ({ path: p.split(path.sep).join("/") }));
    }
    return entries.map((e) => {
      const file = path.join(dataDir, e.path);
      return {
        name: e.path.replace(/\.jsonl$/, ""),
        dataset: defaultDataset(file),
        split: defaultSplit(file),
        file,
        ...(e.rows === undefined ? {} : { rows: e.rows }),
      };
    });
  });

export interface LoadBenchmarksOptions {
  /** Apply Search-R1's question preprocessing (see `searchR1Question`). */
  readonly searchR1Question?: boolean;
}

/**
 * Load the benchmarks of `dataDir`. `names` picks files by full name (`hotpotqa/dev.sample500`) or
 * by dataset (`hotpotqa`: that dataset's one preferred file, see `preferredBenchmarkFile` — never
 * several files of one dataset, which would load the questions they share twice); default every
 * file. Each file is loaded once. Row counts are checked against the manifest.
 */
export const loadBenchmarks = (
  dataDir: string,
  names?: ReadonlyArray<string>,
  options: LoadBenchmarksOptions = {},
): Effect.Effect<Benchmark[], DatasetError> =>
  Effect.gen(function* () {
    const all = yield* listBenchmarks(dataDir);
    let selected = all;
    if (names !== undefined) {
      const unknown = names.filter((n) => !all.some((b) => b.name === n || b.dataset === n));
      if (unknown.length > 0) {
        return yield* new DatasetError({
          message: `${dataDir}: unknown benchmark ${unknown.join(", ")}; available: ${all.map((b) => b.name).join(", ")}`,
          file: dataDir,
        });
      }
      const wanted = new Set(
        names.map((n) => (all.some((b) => b.name === n) ? n : preferredBenchmarkFile(all, n)!.name)),
      );
      selected = all.filter((b) => wanted.has(b.name));
    }
    return yield* Effect.forEach(selected, (b) =>
      Effect.gen(function* () {
        const tasks = yield* loadFlashRagJsonl(b.file, {
          dataset: b.dataset,
          split: b.split,
          ...(options.searchR1Question === undefined ? {} : { searchR1Question: options.searchR1Question }),
        });
        if (b.rows !== undefined && tasks.length !== b.rows) {
          return yield* new DatasetError({
            message: `${b.file}: ${tasks.length} records, but manifest.json says ${b.rows}`,
            file: b.file,
          });
        }
        return { ...b, tasks };
      }),
    );
  });
