import { Effect, FileSystem } from "effect";

export type StepMetrics = Record<string, number | string>;

/** The rows of RL steps (step ≥ 1): step 0 holds only the evaluation of the starting policy. */
export const trainingSteps = (rows: ReadonlyArray<StepMetrics>): StepMetrics[] =>
  rows.filter((row) => Number(row["step"]) >= 1);

/** Every complete line of a JSON-lines log (a torn last line from a crash is not a record). */
export const parseMetricsLines = (text: string): StepMetrics[] => {
  const rows: StepMetrics[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    try {
      rows.push(JSON.parse(line) as StepMetrics);
    } catch {
      // a line cut by a crash: not a complete record
    }
  }
  return rows;
};

/**
 * `metrics.jsonl`: one JSON object per step, appended and fsynced line by line. On resume the
 * lines past the restored step are dropped, so the file never holds a step twice. Every operation
 * is an Effect over the `FileSystem` service; its failures are `PlatformError`s naming the file.
 */
export class MetricsLog {
  readonly file: string;

  constructor(file: string) {
    this.file = file;
  }

  append(metrics: StepMetrics) {
    const file = this.file;
    return Effect.scoped(
      Effect.gen(function* () {
        const fs = yield* FileSystem.FileSystem;
        const handle = yield* fs.open(file, { flag: "a" });
        yield* handle.writeAll(new TextEncoder().encode(`${JSON.stringify(metrics)}\n`));
        yield* handle.sync;
      }),
    );
  }

  /** Every complete line; none when the file does not exist yet. */
  read() {
    const file = this.file;
    return Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem;
      if (!(yield* fs.exists(file))) return [] as StepMetrics[];
      return parseMetricsLines(yield* fs.readFileString(file));
    });
  }

  /** Keep only steps ≤ `step` (used when resuming from the checkpoint of that step). */
  truncateAfter(step: number) {
    const file = this.file;
    const read = this.read();
    return Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem;
      const kept = (yield* read).filter((row) => Number(row["step"]) <= step);
      yield* fs.writeFileString(file, kept.map((row) => `${JSON.stringify(row)}\n`).join(""));
    });
  }
}
