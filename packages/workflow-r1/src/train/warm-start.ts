/**
 * The supervised warm start, in one place: how many steps it takes (`warmStartSteps`), the learning
 * rate schedule that gives it its own rate (`learningRateSchedule`, read by the learner's optimizer),
 * and the loop over demonstration batches (`warmStart`).
 */
import {
  Environment,
  type EnvironmentPlugin,
  Learner,
  type LearnerShape,
  Policy,
  type Random,
  type Task,
  TrajectoryBuilder,
} from "@workflow-r1/core";
import { Effect } from "effect";
import type { TrainConfig } from "../config.js";
import { createProgress } from "./progress.js";

/** Warm-start steps of a run: an environment without demonstrations has none (RL starts at optimizer step 1). */
export const warmStartSteps = (config: TrainConfig, plugin: EnvironmentPlugin): number =>
  plugin.demonstrations ? config.warmStart.steps : 0;

/**
 * The optimizer's learning-rate schedule: the warm start's own rate for its steps, the RL rate after.
 * `step` is the optimizer's own counter, restored from checkpoints, so a resumed run keeps it.
 */
export const learningRateSchedule = (config: TrainConfig, plugin: EnvironmentPlugin) => {
  const steps = warmStartSteps(config, plugin);
  return (step: number, rate: number): number => (step <= steps ? config.warmStart.learningRate : rate);
};

export interface WarmStartHooks<E, R> {
  /** Warm-start steps already done (a resumed warm start continues after them). */
  readonly from: number;
  /** Saves a warm-start checkpoint after `step` (every `warmStart.checkpointEvery` steps). */
  readonly checkpoint: (step: number) => Effect.Effect<void, E, R>;
  /** Records the demonstration NLL of a step (the dashboard's warm-start panel). */
  readonly record: (step: number, nll: number) => Effect.Effect<void, E, R>;
}

/** Mean negative log-likelihood per sampled token of `batch` under the learner. */
const demonstrationNll = (
  learner: LearnerShape,
  batch: ReadonlyArray<{ tokens: Int32Array; mask: Uint8Array }>,
) =>
  Effect.map(learner.logprobs(batch), (logp) => {
    let nll = 0;
    let n = 0;
    logp.forEach((lp, i) => {
      for (let p = 0; p < lp.length; p++)
        if (batch[i]!.mask[p] === 1) {
          nll -= lp[p]!;
          n++;
        }
    });
    return nll / Math.max(1, n);
  });

/**
 * Supervised warm start on the environment's demonstrations (maximum likelihood: c_t = −1/N).
 * Checkpointed every `warmStart.checkpointEvery` steps, so a run killed during it resumes where it
 * stopped, with the same batches (the RNG is part of the checkpoint) and the warm-start learning rate.
 */
export const warmStart = <E, R>(
  config: TrainConfig,
  plugin: EnvironmentPlugin,
  tasks: ReadonlyArray<Task>,
  rng: Random,
  hooks: WarmStartHooks<E, R>,
) =>
  Effect.gen(function* () {
    const demonstrations = plugin.demonstrations;
    const total = warmStartSteps(config, plugin);
    if (total === 0 || !demonstrations || hooks.from >= total) return;
    const policy = yield* Policy;
    const learner = yield* Learner;
    const env = yield* Environment;
    // Demonstration trajectories are built through the environment itself, so observations and
    // chat wrappers are exactly those the policy will see during RL.
    const examples: { tokens: Int32Array; mask: Uint8Array }[] = [];
    // Every train task: with fewer, a tiny model memorises the demonstrations (each synthetic task
    // has its own random names) instead of learning to copy facts from observations.
    for (const task of tasks) {
      const episode = yield* env.reset(task);
      const builder = new TrajectoryBuilder(
        policy.renderChat(episode.messages, { addGenerationPrompt: true }),
      );
      for (const action of demonstrations(task, config.environment.options)) {
        const tokens = policy.tokenize(action);
        builder.appendSampled(tokens, new Float32Array(tokens.length).fill(-1));
        const result = yield* episode.step(action);
        if (result._tag === "Done") break;
        builder.appendObservation(
          policy.renderContinuation([{ role: "tool", content: result.observation }], tokens),
        );
      }
      // The token the chat template closes an assistant turn with (`<|im_end|>`, `<end_of_turn>`), what
      // the model ends its turns with; not merely the lowest end-of-generation id (SmolLM2's is
      // `<|endoftext|>`).
      const info = policy.info();
      const end = info.turnEndToken ?? info.endOfTurnTokens[0];
      if (end !== undefined) builder.appendSampled([end], [-1]);
      const t = builder.build({
        reward: 0,
        rewardParts: {},
        groupId: task.id,
        taskId: task.id,
        turns: [],
        finishReason: "answer",
      });
      examples.push({ tokens: t.tokens, mask: t.mask });
    }
    const progress = createProgress(total, "warm-start", { start: hooks.from });
    for (let step = hooks.from + 1; step <= total; step++) {
      const batch = Array.from(
        { length: config.warmStart.batchSize },
        () => examples[rng.int(examples.length)]!,
      );
      const count = batch.reduce((n, e) => n + e.mask.reduce((s, m) => s + m, 0), 0);
      const coefficients = batch.map((e) => Float64Array.from(e.mask, (m) => (m === 1 ? -1 / count : 0)));
      yield* learner.backward(batch, coefficients);
      yield* learner.step();
      if (step % 25 === 0 || step === total) {
        const nll = yield* demonstrationNll(learner, batch.slice(0, 4));
        yield* hooks.record(step, nll);
        progress.update(step, `demonstration NLL/token ${nll.toFixed(3)}`);
      }
      if (step % config.warmStart.checkpointEvery === 0 && step < total) yield* hooks.checkpoint(step);
    }
    progress.stop();
  });
