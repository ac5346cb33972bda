/**
 * `workflow-r1 compare`: the paper's GRPO / GSPO / GSsPO table on the synthetic environment —
 * each algorithm trained with several seeds from the same config; final held-out accuracy and the
 * area under the training curve (mean over seeds with a bootstrap 95% interval), the clip
 * fraction, and the steps until the accuracy first reaches a threshold.
 *
 * An algorithm entry is a registered name (`gsspo`) or a name with settings, e.g.
 * `gsspo@clipLow=0.2@clipHigh=0.2@aggregation=token-mean`: the same algorithm under another
 * hyperparameter convention, labelled by the whole entry.
 */

import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { NodeFileSystem } from "@effect/platform-node";
import { bootstrapMean, ConfigError, mean, sampleStd } from "@workflow-r1/core";
import { Data, Effect, Exit, FileSystem } from "effect";
import * as YAML from "yaml";
import { deepMerge, loadConfig } from "../config.js";
import { writeFileAtomic } from "./atomic.js";
import { MetricsLog, type StepMetrics, trainingSteps } from "./metrics-log.js";
import { train } from "./run.js";

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
  /**
   * With a warm start, run it once per seed and start every algorithm of that seed from its step-0
   * checkpoint (default true): identical to separate warm starts, which do not depend on the
   * algorithm, at a fraction of the time.
   */
  readonly shareWarmStart?: boolean;
  /**
   * Continue a compare that stopped (a crash, Ctrl-C) in the same `out`: runs that finished (their
   * `summary.json` is written) are kept, runs with a checkpoint resume from their latest one, and
   * only the rest start anew. The options must be the ones the compare started with.
   */
  readonly resume?: boolean;
}

export interface CompareRow {
  /** The entry as given (`gsspo`, or `gsspo@clipLow=0.2@…`). */
  readonly algorithm: string;
  /** Per seed: the last held-out evaluation (see {@link finalAccuracy}). */
  readonly finalAccuracy: ReadonlyArray<number>;
  /** Per seed: the area under the training-accuracy curve (see {@link trainingCurveArea}). */
  readonly curveArea: ReadonlyArray<number>;
  /** Per seed: the mean clip fraction over the RL steps. */
  readonly clipFraction: ReadonlyArray<number>;
  readonly stepsToThreshold: ReadonlyArray<number | null>;
}

/** An algorithm entry: its registered name and the `algorithm.*` settings it overrides. */
export interface AlgorithmEntry {
  readonly label: string;
  readonly name: string;
  readonly settings: Readonly<Record<string, unknown>>;
}

/** `gsspo@clipLow=0.2@aggregation=token-mean` → name gsspo, settings {clipLow: 0.2, aggregation: "token-mean"}. */
export const parseAlgorithmEntry = (entry: string): AlgorithmEntry => {
  const [name, ...assignments] = entry.split("@");
  if (!name)
    throw new ConfigError({
      field: "algorithms",
      message: `compare: empty algorithm name in ${JSON.stringify(entry)}`,
    });
  const settings: Record<string, unknown> = {};
  for (const assignment of assignments) {
    const eq = assignment.indexOf("=");
    if (eq <= 0)
      throw new ConfigError({
        field: "algorithms",
        message: `compare: ${JSON.stringify(entry)}: expected NAME@key=value@key=value (e.g. gsspo@clipLow=0.2), got ${JSON.stringify(assignment)}`,
      });
    settings[assignment.slice(0, eq)] = YAML.parse(assignment.slice(eq + 1));
  }
  return { label: entry, name, settings };
};

/** A directory name for an entry's runs. */
const slug = (label: string) => label.replace(/[^A-Za-z0-9._-]+/g, "_");

/**
 * The area under the training-accuracy curve, normalised by the number of RL steps: the mean
 * training accuracy over all steps. It rewards learning early as well as ending high, and uses
 * every step's episodes rather than one final evaluation.
 */
export const trainingCurveArea = (rows: ReadonlyArray<StepMetrics>): number =>
  mean(
    trainingSteps(rows).map((r) => Number(r["accuracy"] ?? 0)),
    0,
  );

/** The mean clip fraction over the RL steps that updated the policy. */
export const meanClipFraction = (rows: ReadonlyArray<StepMetrics>): number =>
  mean(
    trainingSteps(rows)
      .filter((r) => r["clip_fraction"] !== undefined)
      .map((r) => Number(r["clip_fraction"])),
    0,
  );

/** Final accuracy: the last evaluation when there is one, else the mean training accuracy of the last quarter. */
export const finalAccuracy = (rows: ReadonlyArray<StepMetrics>): number => {
  const evaluated = rows.filter((r) => r["eval/accuracy"] !== undefined);
  if (evaluated.length > 0) return Number(evaluated[evaluated.length - 1]!["eval/accuracy"]);
  const training = trainingSteps(rows);
  const quarter = training.slice(-Math.max(1, Math.floor(training.length / 4)));
  return mean(
    quarter.map((r) => Number(r["accuracy"])),
    0,
  );
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

/** `0.412 [0.371, 0.455]`: the mean over seeds with its seeded bootstrap 95% interval. */
const withInterval = (values: ReadonlyArray<number>): string => {
  const estimate = bootstrapMean(values, { resamples: 2000, seed: 7 });
  return `${estimate.mean.toFixed(3)} [${estimate.low.toFixed(3)}, ${estimate.high.toFixed(3)}]`;
};

export const compareTable = (rows: ReadonlyArray<CompareRow>, threshold: number): string => {
  const seeds = Math.max(0, ...rows.map((r) => r.finalAccuracy.length));
  const lines = [
    `| algorithm | final held-out accuracy, mean [95% CI] | training-curve area, mean [95% CI] | clip fraction | final accuracy ± std | steps to accuracy ≥ ${threshold}, mean of ${STEPS_TO_THRESHOLD_WINDOW} steps (per seed) |`,
    "| --- | --- | --- | --- | --- | --- |",
  ];
  for (const row of rows)
    lines.push(
      `| ${row.algorithm} | ${withInterval(row.finalAccuracy)} | ${withInterval(row.curveArea)} | ` +
        `${mean(row.clipFraction).toFixed(3)} | ${mean(row.finalAccuracy).toFixed(3)} ± ${sampleStd(row.finalAccuracy).toFixed(3)} | ` +
        `${row.stepsToThreshold.map((s) => (s === null ? "—" : String(s))).join(", ")} |`,
    );
  lines.push(
    "",
    `${seeds} seed(s) per algorithm; intervals: percentile bootstrap over seeds (2,000 resamples). ` +
      "Training-curve area: mean training accuracy over all RL steps.",
  );
  return lines.join("\n");
};

interface CompareJob {
  readonly algorithm: string;
  readonly entry: AlgorithmEntry;
  readonly seed: number;
  readonly out: string;
}

// The built CLI, from both src/train (tests) and dist/train: the package's dist/cli.js.
const CLI = fileURLToPath(new URL("../../dist/cli.js", import.meta.url));

/** A compare run that did not finish: which one, why, and where its log is. */
export class CompareRunError extends Data.TaggedError("CompareRunError")<{
  readonly message: string;
  readonly algorithm: string;
  readonly seed: number;
}> {}

/**
 * One run as a child process; its output goes to `<run>.log` and, line-prefixed, to stderr. If the
 * compare is interrupted while it runs (Ctrl-C), the child is stopped with it.
 */
const runChild = (
  job: CompareJob,
  configFile: string,
  resume: boolean,
): Effect.Effect<void, CompareRunError> =>
  Effect.callback<void, CompareRunError>((done) => {
    const label = `[${job.algorithm} seed ${job.seed}] `;
    const log = createWriteStream(`${job.out}.log`);
    const args = [CLI, "train", "--config", configFile, ...(resume ? ["--resume"] : [])];
    const child = spawn(process.execPath, args, {
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
    const failed = (why: string) =>
      new CompareRunError({
        algorithm: job.algorithm,
        seed: job.seed,
        message: `${job.algorithm} seed ${job.seed} failed (${why}); see ${job.out}.log`,
      });
    child.stdout.on("data", forward);
    child.stderr.on("data", forward);
    child.on("error", (error) => done(Effect.fail(failed(error.message))));
    child.on("close", (code, signal) => {
      log.end();
      done(code === 0 ? Effect.void : Effect.fail(failed(signal ?? `exit ${code}`)));
    });
    return Effect.sync(() => {
      child.kill("SIGTERM");
    });
  });

/**
 * Run `run` over `items`, at most `limit` at a time. The first failure stops new starts; runs
 * already going finish (their results stay usable with --tabulate-only), then it is the failure.
 */
const pool = <A, E, R>(items: ReadonlyArray<A>, limit: number, run: (item: A) => Effect.Effect<void, E, R>) =>
  Effect.gen(function* () {
    let failure: Exit.Exit<void, E> | undefined;
    yield* Effect.forEach(
      items,
      (item) =>
        Effect.suspend(() =>
          failure === undefined
            ? Effect.tap(Effect.exit(run(item)), (exit) =>
                Effect.sync(() => {
                  if (Exit.isFailure(exit)) failure ??= exit;
                }),
              )
            : Effect.void,
        ),
      { concurrency: Math.max(1, limit), discard: true },
    );
    if (failure !== undefined) return yield* failure;
  });

/**
 * Start a run directory from a shared warm start: the warm-start run's step-0 checkpoint (learner
 * state with optimizer moments, policy weights, RNG state), its starting model, its step-0
 * evaluation and warm-start log, and this run's own resolved config. Resuming it is exactly a
 * fresh run of this algorithm: the warm start does not depend on the algorithm.
 */
const seedFromWarmStart = (from: string, to: string, config: unknown) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem;
    const checkpoint = path.join(from, "checkpoints", "step-000000");
    if (!(yield* fs.exists(path.join(checkpoint, "state.json"))))
      return yield* new ConfigError({
        message: `compare: the shared warm start ${from} has no step-0 checkpoint`,
      });
    yield* fs.makeDirectory(path.join(to, "checkpoints"), { recursive: true });
    yield* fs.copy(checkpoint, path.join(to, "checkpoints", "step-000000"));
    yield* writeFileAtomic(path.join(to, "checkpoints", "latest"), "step-000000");
    for (const file of ["model-init.gguf", "warm-start.jsonl"])
      if (yield* fs.exists(path.join(from, file)))
        yield* fs.copyFile(path.join(from, file), path.join(to, file));
    const start = (yield* new MetricsLog(path.join(from, "metrics.jsonl")).read()).filter(
      (r) => Number(r["step"]) === 0,
    );
    yield* fs.writeFileString(
      path.join(to, "metrics.jsonl"),
      start.map((r) => `${JSON.stringify(r)}\n`).join(""),
    );
    yield* writeFileAtomic(path.join(to, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
  });

const trainAll = (jobs: ReadonlyArray<CompareJob>, options: CompareOptions) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem;
    const overridesFor = (job: CompareJob) =>
      deepMerge(options.overrides ?? {}, {
        seed: job.seed,
        out: job.out,
        algorithm: { ...job.entry.settings, name: job.entry.name },
      });
    const resuming = options.resume ?? false;
    /** Where a run stands: finished, stopped after a checkpoint, or not started. */
    const progress = (out: string) =>
      Effect.gen(function* () {
        if (!resuming) return "new" as const;
        if (yield* fs.exists(path.join(out, "summary.json"))) return "done" as const;
        if (yield* fs.exists(path.join(out, "checkpoints", "latest"))) return "started" as const;
        return "new" as const;
      });
    if (!resuming) for (const job of jobs) yield* fs.remove(job.out, { recursive: true, force: true });
    const parallel = options.parallel ?? 1;
    const configs = path.join(options.out, "configs");
    yield* fs.makeDirectory(configs, { recursive: true });
    const runJob = (job: CompareJob, overrides: unknown, resume: boolean) =>
      Effect.gen(function* () {
        if (parallel <= 1) {
          yield* train({ file: options.file, overrides, resume });
          return;
        }
        // Each child gets its fully resolved config, so every run is reproducible from its own file.
        const config = yield* loadConfig({ file: options.file, overrides });
        const file = path.join(configs, `${slug(job.algorithm)}-seed${job.seed}.json`);
        yield* writeFileAtomic(file, `${JSON.stringify(config, null, 2)}\n`);
        yield* runChild(job, file, resume);
      });

    const base = yield* loadConfig({ file: options.file, overrides: options.overrides });
    const share = (options.shareWarmStart ?? true) && base.warmStart.steps > 0 && jobs.length > 1;
    if (!share)
      return yield* pool(jobs, parallel, (job) =>
        Effect.gen(function* () {
          const at = yield* progress(job.out);
          if (at !== "done") yield* runJob(job, overridesFor(job), at === "started");
        }),
      );
    // One warm start per seed (a 1-step run keeps its step-0 checkpoint), then every algorithm of
    // that seed resumes from it.
    const seeds = [...new Set(jobs.map((job) => job.seed))];
    const warmJobs = seeds.map((seed) => {
      const out = path.join(options.out, `warm-start-seed${seed}`);
      const entry = parseAlgorithmEntry("warm-start");
      return { algorithm: "warm-start", entry, seed, out };
    });
    if (!resuming) for (const job of warmJobs) yield* fs.remove(job.out, { recursive: true, force: true });
    process.stderr.write(
      `[compare] one shared warm start per seed: ${warmJobs.map((j) => j.out).join(", ")}\n`,
    );
    yield* pool(warmJobs, parallel, (job) =>
      Effect.gen(function* () {
        const at = yield* progress(job.out);
        if (at === "done") return;
        yield* runJob(
          job,
          deepMerge(options.overrides ?? {}, { seed: job.seed, out: job.out, steps: 1 }),
          at === "started",
        );
      }),
    );
    yield* pool(jobs, parallel, (job) =>
      Effect.gen(function* () {
        const overrides = overridesFor(job);
        const at = yield* progress(job.out);
        if (at === "done") return;
        if (at === "new") {
          yield* fs.remove(job.out, { recursive: true, force: true });
          yield* seedFromWarmStart(
            path.join(options.out, `warm-start-seed${job.seed}`),
            job.out,
            yield* loadConfig({ file: options.file, overrides }),
          );
        }
        return yield* runJob(job, overrides, true);
      }),
    );
  });

/** Train every algorithm × seed (unless `tabulateOnly`), then tabulate them into `compare.md`. */
export const compare = (options: CompareOptions) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem;
    const jobs: CompareJob[] = yield* Effect.try({
      try: () =>
        options.algorithms.flatMap((algorithm) => {
          const entry = parseAlgorithmEntry(algorithm);
          return Array.from({ length: options.seeds }, (_, i) => ({
            algorithm,
            entry,
            seed: i + 1,
            out: path.join(options.out, `${slug(algorithm)}-seed${i + 1}`),
          }));
        }),
      catch: (error) => error as ConfigError,
    });
    yield* fs.makeDirectory(options.out, { recursive: true });
    if (options.tabulateOnly) {
      const missing: CompareJob[] = [];
      for (const job of jobs) if (!(yield* fs.exists(path.join(job.out, "metrics.jsonl")))) missing.push(job);
      if (missing.length > 0)
        return yield* new ConfigError({
          field: "tabulate-only",
          message: `--tabulate-only: no metrics.jsonl in ${missing.map((job) => job.out).join(", ")}; run compare without it first`,
        });
    } else yield* trainAll(jobs, options);
    const table: CompareRow[] = [];
    for (const algorithm of options.algorithms) {
      const runs: StepMetrics[][] = [];
      for (const job of jobs.filter((job) => job.algorithm === algorithm))
        runs.push(yield* new MetricsLog(path.join(job.out, "metrics.jsonl")).read());
      table.push({
        algorithm,
        finalAccuracy: runs.map(finalAccuracy),
        curveArea: runs.map(trainingCurveArea),
        clipFraction: runs.map(meanClipFraction),
        stepsToThreshold: runs.map((rows) => stepsToThreshold(rows, options.threshold)),
      });
    }
    const markdown = compareTable(table, options.threshold);
    yield* writeFileAtomic(path.join(options.out, "compare.md"), `${markdown}\n`);
    yield* Effect.sync(() => process.stdout.write(`${markdown}\n`));
    return table;
  });

/** {@link compare} on Node's file system, as a Promise. */
export const runCompare = (options: CompareOptions): Promise<CompareRow[]> =>
  Effect.runPromise(compare(options).pipe(Effect.provide(NodeFileSystem.layer)));
