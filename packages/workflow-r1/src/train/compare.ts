/**
 * `workflow-r1 compare`: the paper's GRPO / GSPO / GSsPO table on the synthetic environment —
 * each algorithm trained with several seeds from the same config; final accuracy (mean ± std
 * over seeds) and steps until the accuracy first reaches a threshold.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { deepMerge, resolveConfig } from "../config.js";
import { writeFileAtomic } from "./atomic.js";
import { MetricsLog, type StepMetrics, trainingSteps } from "./metrics-log.js";
import { runTrain } from "./run.js";
import { mean, std } from "./stats.js";

export interface CompareOptions {
  readonly algorithms: ReadonlyArray<string>;
  readonly seeds: number;
  readonly file?: string;
  readonly out: string;
  readonly threshold: number;
  readonly overrides?: unknown;
  /**
   * Runs at a time. 1 (default): one after another in this process. More: each run is a child
   * `workflow-r1 train` process (on 2 cores, `--parallel 2` with `learner.threads=1`).
   */
  readonly parallel?: number;
  /** Only tabulate the runs already in `out` (e.g. with another threshold); train nothing. */
  readonly tabulateOnly?: boolean;
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
  const training = trainingSteps(rows);
  const quarter = training.slice(-Math.max(1, Math.floor(training.length / 4)));
  return mean(quarter.map((r) => Number(r["accuracy"])));
};

/**
 * The first step at which the training accuracy, averaged over the last `window` steps, reaches
 * `threshold`. One step's accuracy comes from a handful of tasks, so a single lucky step would
 * otherwise count as reaching it.
 */
export const stepsToThreshold = (
  rows: ReadonlyArray<StepMetrics>,
  threshold: number,
  window = STEPS_TO_THRESHOLD_WINDOW,
): number | null => {
  const training = trainingSteps(rows);
  for (let i = window - 1; i < training.length; i++) {
    const recent = training.slice(i - window + 1, i + 1).map((r) => Number(r["accuracy"]));
    if (mean(recent) >= threshold) return Number(training[i]!["step"]);
  }
  return null;
};

/** Steps averaged by {@link stepsToThreshold}. */
export const STEPS_TO_THRESHOLD_WINDOW = 5;

export const compareTable = (rows: ReadonlyArray<CompareRow>, threshold: number): string => {
  const lines = [
    `| algorithm | final accuracy (mean ± std) | steps to accuracy ≥ ${threshold}, mean of ${STEPS_TO_THRESHOLD_WINDOW} steps (per seed) |`,
    "| --- | --- | --- |",
  ];
  for (const row of rows)
    lines.push(
      `| ${row.algorithm} | ${mean(row.finalAccuracy).toFixed(3)} ± ${std(row.finalAccuracy).toFixed(3)} | ` +
        `${row.stepsToThreshold.map((s) => (s === null ? "—" : String(s))).join(", ")} |`,
    );
  return lines.join("\n");
};

interface CompareJob {
  readonly algorithm: string;
  readonly seed: number;
  readonly out: string;
}

// The built CLI, from both src/train (tests) and dist/train: the package's dist/cli.js.
const CLI = fileURLToPath(new URL("../../dist/cli.js", import.meta.url));

/** One run as a child process; its output goes to `<run>.log` and, line-prefixed, to stderr. */
const runChild = (job: CompareJob, configFile: string): Promise<void> =>
  new Promise((resolve, reject) => {
    const label = `[${job.algorithm} seed ${job.seed}] `;
    const log = fs.createWriteStream(`${job.out}.log`);
    const child = spawn(process.execPath, [CLI, "train", "--config", configFile], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let pending = "";
    const forward = (chunk: Buffer) => {
      log.write(chunk);
      pending += chunk.toString("utf8");
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) process.stderr.write(`${label}${line}\n`);
    };
    child.stdout.on("data", forward);
    child.stderr.on("data", forward);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      log.end();
      if (code === 0) resolve();
      else
        reject(
          new Error(
            `${job.algorithm} seed ${job.seed} failed (${signal ?? `exit ${code}`}); see ${job.out}.log`,
          ),
        );
    });
  });

/** Run `jobs` with at most `limit` at a time; the first failure stops new starts and is thrown. */
const pool = async <A>(items: ReadonlyArray<A>, limit: number, run: (item: A) => Promise<void>) => {
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (failure === undefined && next < items.length) {
      const item = items[next++]!;
      await run(item).catch((error) => {
        failure ??= error;
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure;
};

const trainAll = async (jobs: ReadonlyArray<CompareJob>, options: CompareOptions): Promise<void> => {
  const overridesFor = (job: CompareJob) =>
    deepMerge(options.overrides ?? {}, { seed: job.seed, out: job.out, algorithm: { name: job.algorithm } });
  for (const job of jobs) fs.rmSync(job.out, { recursive: true, force: true });
  if ((options.parallel ?? 1) <= 1) {
    for (const job of jobs)
      await runTrain({ file: options.file, overrides: overridesFor(job), resume: false });
    return;
  }
  // Each child gets its fully resolved config, so every run is reproducible from its own file.
  const configs = path.join(options.out, "configs");
  fs.mkdirSync(configs, { recursive: true });
  await pool(jobs, options.parallel ?? 1, async (job) => {
    const config = resolveConfig({ file: options.file, overrides: overridesFor(job) });
    const file = path.join(configs, `${job.algorithm}-seed${job.seed}.json`);
    writeFileAtomic(file, `${JSON.stringify(config, null, 2)}\n`);
    await runChild(job, file);
  });
};

export const runCompare = async (options: CompareOptions): Promise<CompareRow[]> => {
  const jobs: CompareJob[] = options.algorithms.flatMap((algorithm) =>
    Array.from({ length: options.seeds }, (_, i) => ({
      algorithm,
      seed: i + 1,
      out: path.join(options.out, `${algorithm}-seed${i + 1}`),
    })),
  );
  fs.mkdirSync(options.out, { recursive: true });
  if (options.tabulateOnly) {
    const missing = jobs.filter((job) => !fs.existsSync(path.join(job.out, "metrics.jsonl")));
    if (missing.length > 0)
      throw new Error(
        `--tabulate-only: no metrics.jsonl in ${missing.map((job) => job.out).join(", ")}; run compare without it first`,
      );
  } else await trainAll(jobs, options);
  const table: CompareRow[] = options.algorithms.map((algorithm) => {
    const runs = jobs
      .filter((job) => job.algorithm === algorithm)
      .map((job) => new MetricsLog(path.join(job.out, "metrics.jsonl")).read());
    return {
      algorithm,
      finalAccuracy: runs.map(finalAccuracy),
      stepsToThreshold: runs.map((rows) => stepsToThreshold(rows, options.threshold)),
    };
  });
  const markdown = compareTable(table, options.threshold);
  fs.writeFileSync(path.join(options.out, "compare.md"), `${markdown}\n`);
  process.stdout.write(`${markdown}\n`);
  return table;
};
