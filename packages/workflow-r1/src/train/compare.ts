/**
 * `workflow-r1 compare`: the paper's GRPO / GSPO / GSsPO table on the synthetic environment —
 * each algorithm trained with several seeds from the same config; final accuracy (mean ± std
 * over seeds) and steps until the accuracy first reaches a threshold.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { deepMerge } from "../config.js";
import type { StepMetrics } from "./metrics-log.js";
import { runTrain } from "./run.js";
import { mean, std } from "./stats.js";

export interface CompareOptions {
  readonly algorithms: ReadonlyArray<string>;
  readonly seeds: number;
  readonly file?: string;
  readonly out: string;
  readonly threshold: number;
  readonly overrides?: unknown;
}

export interface CompareRow {
  readonly algorithm: string;
  readonly finalAccuracy: ReadonlyArray<number>;
  readonly stepsToThreshold: ReadonlyArray<number | null>;
}

/** Final accuracy: the last evaluation when there is one, else the mean training accuracy of the last quarter. */
export const finalAccuracy = (rows: ReadonlyArray<StepMetrics>): number => {
  const evaluated = rows.filter((r) => r["eval/accuracy"] !== undefined);
  if (evaluated.length > 0) return Number(evaluated[evaluated.length - 1]!["eval/accuracy"]);
  const quarter = rows.slice(-Math.max(1, Math.floor(rows.length / 4)));
  return mean(quarter.map((r) => Number(r["accuracy"])));
};

export const stepsToThreshold = (rows: ReadonlyArray<StepMetrics>, threshold: number): number | null => {
  const hit = rows.find((r) => Number(r["accuracy"]) >= threshold);
  return hit ? Number(hit["step"]) : null;
};

export const compareTable = (rows: ReadonlyArray<CompareRow>, threshold: number): string => {
  const lines = [
    `| algorithm | final accuracy (mean ± std) | steps to accuracy ≥ ${threshold} (per seed) |`,
    "| --- | --- | --- |",
  ];
  for (const row of rows)
    lines.push(
      `| ${row.algorithm} | ${mean(row.finalAccuracy).toFixed(3)} ± ${std(row.finalAccuracy).toFixed(3)} | ` +
        `${row.stepsToThreshold.map((s) => (s === null ? "—" : String(s))).join(", ")} |`,
    );
  return lines.join("\n");
};

export const runCompare = async (options: CompareOptions): Promise<CompareRow[]> => {
  const table: CompareRow[] = [];
  for (const algorithm of options.algorithms) {
    const finals: number[] = [];
    const reached: (number | null)[] = [];
    for (let seed = 1; seed <= options.seeds; seed++) {
      const out = path.join(options.out, `${algorithm}-seed${seed}`);
      fs.rmSync(out, { recursive: true, force: true });
      const rows = await runTrain({
        file: options.file,
        overrides: deepMerge(options.overrides ?? {}, { seed, out, algorithm: { name: algorithm } }),
        resume: false,
      });
      finals.push(finalAccuracy(rows));
      reached.push(stepsToThreshold(rows, options.threshold));
    }
    table.push({ algorithm, finalAccuracy: finals, stepsToThreshold: reached });
  }
  const markdown = compareTable(table, options.threshold);
  fs.mkdirSync(options.out, { recursive: true });
  fs.writeFileSync(path.join(options.out, "compare.md"), `${markdown}\n`);
  process.stdout.write(`${markdown}\n`);
  return table;
};
