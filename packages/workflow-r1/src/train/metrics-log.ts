import * as fs from "node:fs";

export type StepMetrics = Record<string, number | string>;

/** The rows of RL steps (step ≥ 1): step 0 holds only the evaluation of the starting policy. */
export const trainingSteps = (rows: ReadonlyArray<StepMetrics>): StepMetrics[] =>
  rows.filter((row) => Number(row["step"]) >= 1);

/**
 * `metrics.jsonl`: one JSON object per step, appended and fsynced line by line. On resume the
 * lines past the restored step are dropped, so the file never holds a step twice.
 */
export class MetricsLog {
  constructor(readonly file: string) {}

  append(metrics: StepMetrics): void {
    const fd = fs.openSync(this.file, "a");
    try {
      fs.writeSync(fd, `${JSON.stringify(metrics)}\n`);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Every complete line (a torn last line from a crash is skipped). */
  read(): StepMetrics[] {
    if (!fs.existsSync(this.file)) return [];
    const rows: StepMetrics[] = [];
    for (const line of fs.readFileSync(this.file, "utf8").split("\n")) {
      if (line.trim() === "") continue;
      try {
        rows.push(JSON.parse(line) as StepMetrics);
      } catch {
        // a line cut by a crash: not a complete record
      }
    }
    return rows;
  }

  /** Keep only steps ≤ `step` (used when resuming from the checkpoint of that step). */
  truncateAfter(step: number): void {
    const kept = this.read().filter((row) => Number(row["step"]) <= step);
    fs.writeFileSync(this.file, kept.map((row) => `${JSON.stringify(row)}\n`).join(""));
  }
}
