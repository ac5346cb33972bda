/**
 * The training loop: rollout → update → export → reload → probe check → metrics → checkpoint,
 * resumable from the last complete checkpoint after a crash at any point.
 */
import * as path from "node:path";
import {
  Environment,
  type EnvironmentPlugin,
  Learner,
  type LearnerShape,
  mean,
  Policy,
  Random,
  sampleStd,
  type Task,
  type Trajectory,
} from "@workflow-r1/core";
import { ensureExecutorAvailable, executorMetrics, executorStatsOf } from "@workflow-r1/env-qa";
import type { NativeMemory } from "@workflow-r1/learner";
import { appendTrajectory, rollout, trajectoryLogWriter } from "@workflow-r1/rollout";
import { Effect, FileSystem } from "effect";
import type { TrainConfig } from "../config.js";
import { writeFileAtomic } from "./atomic.js";
import { Checkpoints, checkpointPhase, type LoopState } from "./checkpoint.js";
import { writeDashboard } from "./dashboard.js";
import { MetricsLog, type StepMetrics, trainingSteps } from "./metrics-log.js";
import { createProgress } from "./progress.js";
import { calibrateGuard, checkReload, learnerProbe } from "./stale-guard.js";
import { updatePolicy } from "./update.js";
import { warmStart } from "./warm-start.js";

export interface RunPaths {
  readonly out: string;
  readonly metrics: string;
  readonly trajectories: string;
  /** Demonstration NLL of the warm start, one line per logged warm-start step. */
  readonly warmStart: string;
  readonly dashboard: string;
  readonly weights: string;
}

export const runPaths = (out: string, weightsKind: "gguf" | "lora"): RunPaths => ({
  out,
  metrics: path.join(out, "metrics.jsonl"),
  trajectories: path.join(out, "trajectories.msgpack"),
  warmStart: path.join(out, "warm-start.jsonl"),
  dashboard: path.join(out, "dashboard.html"),
  weights: path.join(out, weightsKind === "lora" ? "policy-adapter.gguf" : "policy.gguf"),
});

/**
 * The trainer's seeded stream (task order, sampler seeds, warm-start batches): core's `Random` with
 * the splitmix32 step, the one it has always drawn from, so a seed reproduces earlier runs.
 */
export const trainerRandom = (seed: number): Random => new Random(seed, "splitmix32");

/** Accuracy of an episode: the environment's `em` part when it has one, else reward > 0. */
export const episodeCorrect = (t: Trajectory): number =>
  t.rewardParts["em"] ?? t.rewardParts["accuracy"] ?? (t.reward > 0 ? 1 : 0);

export const rewardMetrics = (trajectories: ReadonlyArray<Trajectory>, prefix = ""): StepMetrics => {
  const rewards = trajectories.map((t) => t.reward);
  const parts = new Set(trajectories.flatMap((t) => Object.keys(t.rewardParts)));
  // Over no episodes every metric reads 0 (as it always has), not NaN.
  const perEpisode = (value: (t: Trajectory) => number) => mean(trajectories.map(value), 0);
  const out: StepMetrics = {
    [`${prefix}reward/mean`]: mean(rewards, 0),
    [`${prefix}reward/std`]: sampleStd(rewards),
    [`${prefix}accuracy`]: perEpisode(episodeCorrect),
    [`${prefix}turns/mean`]: perEpisode((t) => t.turns.length),
    [`${prefix}tokens/sampled_per_episode`]: perEpisode((t) => t.mask.reduce((s, m) => s + m, 0)),
  };
  // Parts named executor* are counts the environment reports per episode (executor calls and
  // failures), not parts of the reward: logged under executor/ as means per episode.
  for (const part of parts)
    out[
      part.startsWith("executor")
        ? `${prefix}executor/${part.slice("executor".length).toLowerCase()}_per_episode`
        : `${prefix}reward/${part}`
    ] = perEpisode((t) => t.rewardParts[part] ?? 0);
  return out;
};

/** Next `count` tasks in a per-epoch shuffled order; returns the tasks and the advanced position. */
export const nextTasks = (
  tasks: ReadonlyArray<Task>,
  count: number,
  state: { dataPosition: number; epoch: number },
  seed: number,
) => {
  const picked: Task[] = [];
  let { dataPosition, epoch } = state;
  const epochOrder = (epoch: number) => trainerRandom(seed + epoch * 7919).shuffle(tasks.map((_, i) => i));
  let order = epochOrder(epoch);
  while (picked.length < count) {
    if (dataPosition >= tasks.length) {
      epoch++;
      dataPosition = 0;
      order = epochOrder(epoch);
    }
    picked.push(tasks[order[dataPosition]!]!);
    dataPosition++;
  }
  return { tasks: picked, dataPosition, epoch };
};

export interface TrainLoopOptions {
  readonly config: TrainConfig;
  readonly plugin: EnvironmentPlugin;
  readonly paths: RunPaths;
  readonly weightsKind: "gguf" | "lora";
  /** Frozen reference model for the KL term (needed when `algorithm.klCoef > 0`). */
  readonly reference?: LearnerShape;
  /** Called after each step's metrics are written (tests use it to stop or inspect). */
  readonly onStep?: (metrics: StepMetrics) => void;
  /** The learner's memory in bytes (weights, gradients, AdamW, work buffer), for the summary. */
  readonly learnerMemory?: () => NativeMemory | undefined;
}

/** One line for the log: the learner's state and its work buffer per token. */
export const describeLearnerMemory = (m: NativeMemory) => {
  const mib = (bytes: number) =>
    bytes < 2 ** 20 ? `${(bytes / 2 ** 10).toFixed(1)} KiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  const state = m.weights + m.trainable + m.gradients + m.optimizer + m.transposedBase;
  const perToken = m.computeTokens > 0 ? `, ${mib(m.compute / m.computeTokens)} per token` : "";
  return `weights, gradients and AdamW ${mib(state)}; work buffer ${mib(m.compute)} for ${m.computeTokens} tokens${perToken}`;
};

export const trainLoop = (options: TrainLoopOptions) =>
  Effect.gen(function* () {
    const { config, plugin, paths, weightsKind } = options;
    const policy = yield* Policy;
    const learner = yield* Learner;
    const fs = yield* FileSystem.FileSystem;
    const checkpoints = new Checkpoints(paths.out);
    const metricsLog = new MetricsLog(paths.metrics);
    const trainTasks = yield* plugin.tasks(config.environment.options, "train", config.seed);
    const evalTasks =
      config.evalTasks > 0
        ? (yield* plugin.tasks(config.environment.options, "eval", config.seed + 1)).slice(
            0,
            config.evalTasks,
          )
        : [];
    const progressLog = (line: string) => process.stderr.write(`${line}\n`);

    // Temperature 1 with no truncation: the sampler's logprobs are the learner's (see policy README).
    const rolloutOptions = (seed: number) => ({
      groupSize: config.rollout.groupSize,
      maxConcurrentEpisodes: config.rollout.maxConcurrentEpisodes,
      maxTurns: config.rollout.maxTurns,
      maxTokens: config.rollout.maxTokens,
      ...(config.rollout.maxTokensPerTurn !== undefined && {
        maxTokensPerTurn: config.rollout.maxTokensPerTurn,
      }),
      sampling: { temperature: config.rollout.temperature, topP: 1, topK: 0, seed },
    });

    const evaluating = evalTasks.length > 0 && config.evalEvery > 0;
    /**
     * One sample per held-out task, greedy by default (`evalTemperature`), metrics under `eval/`.
     * This is the environment's own held-out split, a training-time signal: not a benchmark protocol.
     */
    const evaluate = (step: number) =>
      Effect.gen(function* () {
        const evaluation = yield* rollout(evalTasks, {
          ...rolloutOptions(config.seed + 17),
          sampling: { temperature: config.evalTemperature, topP: 1, topK: 0, seed: config.seed + 17 },
          groupSize: 1,
          groupIdPrefix: `eval${step}-`,
        });
        // A dead executor ends the run here too, rather than reporting accuracy over error observations.
        yield* ensureExecutorAvailable(yield* Environment);
        return rewardMetrics(
          evaluation.groups.flatMap((g) => g.trajectories),
          "eval/",
        );
      });

    // The learner's weights into the policy after an update. A LoRA adapter goes over in memory
    // (no file written and read back each step); full weights go through the GGUF file, once.
    // Built per call: a wrapped policy (tests, user hooks) may decide at call time what reload does.
    const syncPolicy = () =>
      weightsKind === "lora"
        ? Effect.flatMap(learner.exportAdapter(), (bytes) =>
            policy.reload({ kind: "lora-bytes", bytes, label: `${paths.weights} (in memory)` }),
          )
        : Effect.andThen(learner.save(paths.weights, { format: weightsKind }), () =>
            policy.reload({ kind: weightsKind, path: paths.weights }),
          );

    const warmLog = new MetricsLog(paths.warmStart);
    const saveCheckpoint = (snapshot: LoopState) =>
      checkpoints.save(snapshot, (dir) =>
        learner.saveState(path.join(dir, "learner.state")).pipe(
          Effect.andThen(
            snapshot.policyWeights
              ? Effect.andThen(
                  // In-memory syncs leave the run's adapter file behind the policy: bring it up to date.
                  weightsKind === "lora" ? learner.save(paths.weights, { format: "lora" }) : Effect.void,
                  fs.copyFile(paths.weights, path.join(dir, path.basename(paths.weights))),
                )
              : Effect.void,
          ),
        ),
      );

    let state: LoopState;
    let rng: Random;
    const previous = yield* checkpoints.latest();
    if (previous && checkpointPhase(previous.state) === "rl") {
      state = previous.state;
      rng = trainerRandom(state.rngState);
      yield* learner.loadState(path.join(previous.dir, "learner.state"));
      yield* fs.copyFile(path.join(previous.dir, state.policyWeights), paths.weights);
      yield* policy.reload({ kind: weightsKind, path: paths.weights });
      yield* metricsLog.truncateAfter(state.step);
      yield* checkpoints.prune(2);
      progressLog(
        `[train] resumed from ${previous.dir} (step ${state.step}, data position ${state.dataPosition}, epoch ${state.epoch})`,
      );
      // Killed between the step-0 checkpoint and the starting policy's evaluation: evaluate now.
      if (state.step === 0 && evaluating && !(yield* metricsLog.read()).some((r) => Number(r["step"]) === 0))
        yield* metricsLog.append({ step: 0, ...(yield* evaluate(0)) });
    } else {
      let from = 0;
      if (previous) {
        // Killed during the warm start: continue it from its checkpoint, at its own learning rate.
        rng = trainerRandom(previous.state.rngState);
        yield* learner.loadState(path.join(previous.dir, "learner.state"));
        from = previous.state.warmStartStep ?? 0;
        yield* warmLog.truncateAfter(from);
        yield* checkpoints.prune(2);
        progressLog(
          `[train] resumed the warm start from ${previous.dir} (warm-start step ${from}/${config.warmStart.steps})`,
        );
      } else {
        rng = trainerRandom(config.seed);
        yield* warmLog.truncateAfter(0);
      }
      yield* warmStart(config, plugin, trainTasks, rng, {
        from,
        checkpoint: (warmStartStep) =>
          Effect.andThen(
            saveCheckpoint({
              step: 0,
              dataPosition: 0,
              epoch: 0,
              rngState: rng.getState(),
              policyWeights: "",
              weightsKind,
              phase: "warm-start",
              warmStartStep,
              trajectoryRecords: 0,
            }),
            checkpoints.prune(2),
          ),
        record: (step, nll) => warmLog.append({ step, "warm_start/nll": nll }),
      });
      yield* learner.save(paths.weights, { format: weightsKind });
      yield* policy.reload({ kind: weightsKind, path: paths.weights });
      state = {
        step: 0,
        dataPosition: 0,
        epoch: 0,
        rngState: rng.getState(),
        policyWeights: path.basename(paths.weights),
        weightsKind,
        phase: "rl",
        warmStartStep: config.warmStart.steps,
        trajectoryRecords: 0,
      };
      yield* saveCheckpoint(state);
      yield* checkpoints.prune(2);
      // Step 0: the starting policy (after any warm start) on the eval tasks, the baseline of the curves.
      if (evaluating) yield* metricsLog.append({ step: 0, ...(yield* evaluate(0)) });
      yield* writeDashboard(paths.dashboard, yield* metricsLog.read(), config, yield* warmLog.read());
    }

    // A fixed probe: the first eval (or train) task's prompt, tokenized once.
    const probeEnv = yield* Environment;
    const probeEpisode = yield* probeEnv.reset(evalTasks[0] ?? trainTasks[0]!);
    const probe = policy.renderChat(probeEpisode.messages, { addGenerationPrompt: true }).slice(0, 256);
    // The stale-weights guard's rounding tolerance, measured now that both hold the same weights.
    const guard = yield* calibrateGuard(
      policy,
      learner,
      probe,
      config.model.kvCacheType === "f32" ? 1e-4 : 1e-3,
    );
    progressLog(
      `[train] stale-weights guard: policy vs learner ${guard.disagreement.toExponential(2)} on the same weights; tolerance ${guard.tolerance.toExponential(2)}`,
    );
    let policyProbe = guard.policyScores;

    // Cut the log back to the checkpoint's position: episodes of a killed attempt past it would
    // otherwise stay in the log beside their rerun (checkpoints before this field: kept as is).
    const logWriter = yield* trajectoryLogWriter(
      paths.trajectories,
      state.trajectoryRecords === undefined ? {} : { keepRecords: state.trajectoryRecords },
    );
    if (logWriter.truncatedRecords > 0)
      progressLog(
        `[train] trajectory log cut back to ${logWriter.existingRecords} records (${logWriter.truncatedRecords} from after the checkpoint dropped)`,
      );
    const progress = createProgress(config.steps, "train", { start: state.step });
    while (state.step < config.steps) {
      const step = state.step + 1;
      const picked = nextTasks(trainTasks, config.rollout.tasksPerStep, state, config.seed);
      const t0 = performance.now();
      const executorBefore = executorStatsOf(probeEnv);
      const result = yield* rollout(picked.tasks, {
        ...rolloutOptions(rng.seed()),
        groupIdPrefix: `s${step}-`,
        onTrajectory: (t) => appendTrajectory(logWriter, t),
      });
      // An executor that failed maxConsecutiveFailures calls in a row ends the run here, before
      // the policy is updated on episodes made of error observations.
      yield* ensureExecutorAvailable(probeEnv);
      const executorAfter = executorStatsOf(probeEnv);
      const trajectories = result.groups.flatMap((g) => g.trajectories);
      const t1 = performance.now();

      const probeBefore = yield* learnerProbe(learner, probe);
      const update = yield* updatePolicy(trajectories, learner, rng, options.reference);
      const t2 = performance.now();

      yield* syncPolicy();
      const t2b = performance.now();
      const guardReading = yield* checkReload(
        policy,
        learner,
        probe,
        probeBefore,
        guard.tolerance,
        policyProbe,
      );
      policyProbe = guardReading.policyScores;
      const t3 = performance.now();

      const sampled = trajectories.reduce((n, t) => n + t.mask.reduce((s, m) => s + m, 0), 0);
      const { learnerTokens, ...updateMetrics } = update;
      const metrics: StepMetrics = {
        step,
        ...rewardMetrics(trajectories),
        ...updateMetrics,
        "mismatch/probe_max_abs": guardReading.toNew,
        "guard/probe_to_previous": guardReading.toPrevious,
        "guard/probe_shift": guardReading.shift,
        "guard/policy_move": guardReading.policyMove,
        "guard/tolerance": guardReading.tolerance,
        "tokens/sampled": sampled,
        "throughput/sample_tokens_per_s": sampled / ((t1 - t0) / 1000),
        "throughput/learn_tokens_per_s": (learnerTokens ?? 0) / ((t2 - t1) / 1000),
        "time/rollout": (t1 - t0) / 1000,
        "time/learner": (t2 - t1) / 1000,
        "time/sync": (t3 - t2) / 1000,
        "time/export_reload": (t2b - t2) / 1000,
        "time/probe": (t3 - t2b) / 1000,
        ...(executorAfter && executorMetrics(executorAfter, executorBefore)),
        "rollout/batch_occupancy": result.metrics.meanBatchOccupancy,
        "rollout/operator_wait_s": result.metrics.operatorWaitMs / 1000,
        "rollout/episodes_per_s": result.metrics.episodesPerSecond,
      };
      for (const t of trajectories)
        metrics[`finish/${t.finishReason}`] = Number(metrics[`finish/${t.finishReason}`] ?? 0) + 1;

      if (evaluating && (step % config.evalEvery === 0 || step === config.steps)) {
        const te = performance.now();
        Object.assign(metrics, yield* evaluate(step));
        metrics["time/evaluation"] = (performance.now() - te) / 1000;
      }
      yield* metricsLog.append(metrics);
      options.onStep?.(metrics);
      progress.update(
        step,
        `reward ${Number(metrics["reward/mean"]).toFixed(3)} acc ${Number(metrics["accuracy"]).toFixed(3)} ` +
          `clip ${Number(metrics["clip_fraction"] ?? 0).toFixed(3)} kl ${Number(metrics["approx_kl"] ?? 0).toExponential(1)}`,
      );

      state = {
        ...state,
        step,
        dataPosition: picked.dataPosition,
        epoch: picked.epoch,
        rngState: rng.getState(),
        trajectoryRecords: logWriter.existingRecords + logWriter.records,
      };
      if (step % config.checkpointEvery === 0 || step === config.steps) {
        yield* saveCheckpoint(state);
        yield* checkpoints.prune(2);
      }
      yield* writeDashboard(paths.dashboard, yield* metricsLog.read(), config, yield* warmLog.read());
    }
    progress.stop();
    const rows = yield* metricsLog.read();
    const memory = options.learnerMemory?.();
    if (memory) progressLog(`[train] learner memory: ${describeLearnerMemory(memory)}`);
    yield* writeFileAtomic(
      path.join(paths.out, "summary.json"),
      JSON.stringify({ ...summarize(rows), ...(memory && { learnerMemory: memory }) }, null, 2),
    );
    return rows;
  });

/**
 * Reward and accuracy at the start and end of a run: training metrics as the mean of the first and
 * last quarter of the RL steps; held-out accuracy at the first evaluation (step 0, before RL) and the last.
 */
export const summarize = (rows: ReadonlyArray<StepMetrics>) => {
  const training = trainingSteps(rows);
  const quarter = Math.max(1, Math.floor(training.length / 4));
  const avg = (xs: ReadonlyArray<StepMetrics>, key: string) =>
    mean(
      xs.map((r) => Number(r[key] ?? 0)),
      0,
    );
  const evaluated = rows.filter((r) => r["eval/accuracy"] !== undefined);
  return {
    steps: training.length,
    rewardStart: avg(training.slice(0, quarter), "reward/mean"),
    rewardEnd: avg(training.slice(-quarter), "reward/mean"),
    accuracyStart: avg(training.slice(0, quarter), "accuracy"),
    accuracyEnd: avg(training.slice(-quarter), "accuracy"),
    ...(evaluated.length > 1 && {
      evalAccuracyStart: Number(evaluated[0]!["eval/accuracy"]),
      evalAccuracyEnd: Number(evaluated[evaluated.length - 1]!["eval/accuracy"]),
    }),
  };
};
