/**
 * Grouped multi-turn rollouts with continuous batching.
 *
 * Every episode is its own fiber. Each fiber holds one policy sequence and calls `generate` on it
 * whenever it waits for the model; the policy decodes all concurrent `generate` calls together
 * (continuous batching), so an episode that is busy with an operator call simply has no `generate`
 * in flight and never holds the batch back. Operator calls (`episode.step`) run concurrently under
 * their own bound.
 */
import {
  ContextOverflowError,
  Environment,
  type Episode,
  type EpisodeOutcome,
  type FinishReason,
  type Generation,
  type OperatorCall,
  Policy,
  type PolicySequence,
  type SamplingOptions,
  type Task,
  type Trajectory,
  TrajectoryBuilder,
  type Turn,
} from "@workflow-r1/core";
import { Cause, Data, Duration, Effect, Exit, Option, Queue, Semaphore, Stream } from "effect";

/** A rollout option is out of range. */
export class RolloutOptionsError extends Data.TaggedError("RolloutOptionsError")<{
  readonly message: string;
  readonly field: string;
}> {}

/**
 * The policy sequence does not hold exactly the tokens the trajectory says it does (the prefix
 * check of token-in-token-out failed). The episode is flagged with finish reason "error".
 */
export class TokenPrefixError extends Data.TaggedError("TokenPrefixError")<{
  readonly message: string;
  /** First position where the sequence and the trajectory disagree. */
  readonly position: number;
}> {}

/** Why an episode stopped early: the typed form of a "cancelled" trajectory's `error`. */
export class EpisodeDeadlineError extends Data.TaggedError("EpisodeDeadlineError")<{
  readonly message: string;
  readonly taskId: string;
  readonly deadlineMs: number;
}> {}

export type RolloutSampling = Omit<SamplingOptions, "maxTokens" | "stop"> & {
  /** Extra stop strings, added to the environment's. */
  readonly stop?: ReadonlyArray<string>;
};

export interface RolloutOptions<E = never> {
  /** G: episodes per task (one group per task). */
  readonly groupSize: number;
  /** Episodes (policy sequences) live at once. Must not exceed the policy's sequence count. */
  readonly maxConcurrentEpisodes: number;
  /** Assistant turns per episode; when spent the episode ends with `finish("max-turns")`. */
  readonly maxTurns: number;
  /** Sampled tokens per episode; when spent the episode ends with `finish("max-tokens")`. */
  readonly maxTokens: number;
  /** Sampled tokens per turn. Default: whatever is left of `maxTokens`. */
  readonly maxTokensPerTurn?: number;
  readonly sampling?: RolloutSampling;
  /** Environment steps (operator calls) running at once. Default `maxConcurrentEpisodes`. */
  readonly maxConcurrentOperators?: number;
  /** Wall-clock deadline per episode; an episode past it ends as "cancelled" with an EpisodeDeadlineError. */
  readonly episodeTimeout?: Duration.Input;
  /**
   * Let interruption and deadlines cut a `generate` in flight. Default false: only for policies
   * whose generate aborts cleanly (LlamaCppPolicy 0.0.0 does not; see the comment in the scheduler).
   */
  readonly interruptibleGenerate?: boolean;
  /** Prefix of every groupId (e.g. the training step), so ids stay unique across rollouts. Default "". */
  readonly groupIdPrefix?: string;
  /** Called as each episode finishes (in finishing order), e.g. to append it to a trajectory log. */
  readonly onTrajectory?: (trajectory: Trajectory) => Effect.Effect<void, E> | void;
}

export interface TrajectoryGroup {
  readonly groupId: string;
  readonly task: Task;
  /** The G trajectories of the task, in episode order. */
  readonly trajectories: ReadonlyArray<Trajectory>;
}

export interface RolloutMetrics {
  readonly episodes: number;
  readonly wallMs: number;
  readonly episodesPerSecond: number;
  readonly sampledTokens: number;
  readonly sampledTokensPerSecond: number;
  /** Sequences generating at once, averaged over the time at least one was generating. */
  readonly meanBatchOccupancy: number;
  readonly maxBatchOccupancy: number;
  /** Share of the wall time during which at least one sequence was generating. */
  readonly policyBusyShare: number;
  readonly generateCalls: number;
  /** Summed over episodes: time spent in `episode.step` (operator calls), queueing included. */
  readonly operatorWaitMs: number;
  /** Summed over episodes: time spent in `generate`, batching included. */
  readonly sampleMs: number;
  readonly meanTurnsPerEpisode: number;
  readonly meanSampledTokensPerEpisode: number;
  readonly meanTokensPerEpisode: number;
  readonly finishReasons: Readonly<Partial<Record<FinishReason, number>>>;
  /** Most episodes that were live at once. */
  readonly maxLiveEpisodes: number;
}

export interface RolloutResult {
  readonly groups: ReadonlyArray<TrajectoryGroup>;
  readonly metrics: RolloutMetrics;
}

const messageOf = (e: unknown): string =>
  typeof e === "object" && e !== null && "message" in e && typeof e.message === "string"
    ? e.message
    : String(e);

const now = () => performance.now();

/** Integrates "sequences generating at once" over time, updated whenever a generate starts or ends. */
class OccupancyMeter {
  private generating = 0;
  private last = now();
  private area = 0;
  private busy = 0;
  max = 0;
  calls = 0;
  private tick(): void {
    const t = now();
    if (this.generating > 0) {
      this.area += this.generating * (t - this.last);
      this.busy += t - this.last;
    }
    this.last = t;
  }
  start(): void {
    this.tick();
    this.generating++;
    this.calls++;
    if (this.generating > this.max) this.max = this.generating;
  }
  end(): void {
    this.tick();
    this.generating--;
  }
  summary(): { mean: number; busyMs: number } {
    this.tick();
    return { mean: this.busy > 0 ? this.area / this.busy : 0, busyMs: this.busy };
  }
}

/** Mutable per-episode state, kept outside the episode fiber so a timed-out episode can still be assembled. */
/** A 31-bit seed for one (episode, turn) of a rollout seeded with `seed` (a 32-bit integer hash). */
export const episodeSeed = (seed: number, episode: number, turn: number): number => {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const v of [episode, turn]) {
    h = Math.imul(h ^ v, 0x85ebca6b) >>> 0;
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
  }
  return h & 0x7fffffff;
};

interface EpisodeState {
  builder: TrajectoryBuilder | undefined;
  readonly turns: Turn[];
}

const validate = (options: RolloutOptions<unknown>): Effect.Effect<void, RolloutOptionsError> => {
  const positive = (field: keyof RolloutOptions<unknown>, value: number | undefined) =>
    value !== undefined && !(Number.isInteger(value) && value >= 1)
      ? Effect.fail(
          new RolloutOptionsError({
            field,
            message: `rollout option ${field}: expected an integer ≥ 1, got ${value}`,
          }),
        )
      : Effect.void;
  return Effect.all([
    positive("groupSize", options.groupSize),
    positive("maxConcurrentEpisodes", options.maxConcurrentEpisodes),
    positive("maxTurns", options.maxTurns),
    positive("maxTokens", options.maxTokens),
    positive("maxTokensPerTurn", options.maxTokensPerTurn),
    positive("maxConcurrentOperators", options.maxConcurrentOperators),
  ]).pipe(Effect.asVoid);
};

const firstMismatch = (a: Int32Array, b: Int32Array): number => {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
};

/**
 * Runs G episodes per task and returns them grouped, with metrics. Episode failures (policy error,
 * context overflow, environment error, deadline) become flagged trajectories, never a failed rollout;
 * only invalid options fail the effect. Interrupting it interrupts every episode and closes every
 * policy sequence.
 */
export const rollout = <E = never>(
  tasks: ReadonlyArray<Task>,
  options: RolloutOptions<E>,
): Effect.Effect<RolloutResult, RolloutOptionsError | E, Policy | Environment> =>
  Effect.gen(function* () {
    yield* validate(options);
    const policy = yield* Policy;
    const env = yield* Environment;
    const operators = yield* Semaphore.make(options.maxConcurrentOperators ?? options.maxConcurrentEpisodes);
    const meter = new OccupancyMeter();
    const endOfTurn = new Set(policy.info().endOfTurnTokens);
    const stop = [...env.stopSequences, ...(options.sampling?.stop ?? [])];
    const prefix = options.groupIdPrefix ?? "";
    const deadline =
      options.episodeTimeout === undefined ? undefined : Duration.fromInputUnsafe(options.episodeTimeout);
    let live = 0;
    let maxLive = 0;
    let operatorWaitMs = 0;
    let sampleMs = 0;
    const started = now();

    const finished = (
      state: EpisodeState,
      groupId: string,
      task: Task,
      finishReason: FinishReason,
      outcome?: EpisodeOutcome,
      error?: string,
    ): Trajectory =>
      (state.builder ?? new TrajectoryBuilder([])).build({
        reward: outcome?.reward ?? 0,
        rewardParts: outcome?.rewardParts ?? {},
        groupId,
        taskId: task.id,
        turns: state.turns,
        finishReason,
        ...(error === undefined ? {} : { error }),
      });

    /** One episode; fails only with a flagged trajectory's ingredients (finish reason, message). */
    const episodeBody = (
      task: Task,
      episodeIndex: number,
      state: EpisodeState,
      outcome: { value?: EpisodeOutcome; reason?: FinishReason },
    ) =>
      Effect.scoped(
        Effect.gen(function* () {
          const episode: Episode = yield* env.reset(task);
          const prompt = policy.renderChat(episode.messages, { addGenerationPrompt: true });
          const builder = new TrajectoryBuilder(prompt);
          state.builder = builder;
          const seq: PolicySequence = yield* policy.openSequence(prompt);
          const end = (reason: FinishReason) =>
            Effect.map(episode.finish(reason), (o) => {
              outcome.value = o;
              outcome.reason = reason;
            });
          let append: Int32Array = new Int32Array(0);
          while (true) {
            if (state.turns.length >= options.maxTurns) return yield* end("max-turns");
            const left = options.maxTokens - builder.sampledTokens;
            if (left <= 0) return yield* end("max-tokens");
            const sampling: SamplingOptions = {
              ...options.sampling,
              // The G episodes of a group must be independent samples: each (episode, turn) gets its
              // own seed, derived reproducibly from the rollout's seed.
              ...(options.sampling?.seed !== undefined && {
                seed: episodeSeed(options.sampling.seed, episodeIndex, state.turns.length),
              }),
              maxTokens: Math.min(left, options.maxTokensPerTurn ?? left),
              stop,
            };
            const t0 = now();
            // Uninterruptible unless asked otherwise: LlamaCppPolicy's generate has no abort path, and
            // freeing its sequence under a running decode once crashed the test process (SIGSEGV). An
            // interrupt or deadline therefore takes effect when this turn's sampling ends (at most
            // maxTokensPerTurn tokens later); operator calls stay interruptible.
            const generate = Effect.acquireUseRelease(
              Effect.sync(() => meter.start()),
              () => seq.generate(append, sampling),
              () => Effect.sync(() => meter.end()),
            );
            const gen: Generation = yield* options.interruptibleGenerate
              ? generate
              : Effect.uninterruptible(generate);
            const turnSampleMs = now() - t0;
            sampleMs += turnSampleMs;
            builder.appendObservation(append);
            builder.appendSampled(gen.tokens, gen.logprobs);
            // Token in, token out: the sequence must hold exactly the trajectory's tokens.
            const held = seq.tokens();
            const mine = builder.currentTokens();
            const at = firstMismatch(held, mine);
            if (at >= 0)
              return yield* new TokenPrefixError({
                position: at,
                message: `policy sequence holds ${held.length} tokens, the trajectory ${mine.length}; they differ at position ${at}`,
              });
            // The environment sees the turn's text without the model's end-of-turn token.
            let textEnd = gen.tokens.length;
            while (textEnd > 0 && endOfTurn.has(gen.tokens[textEnd - 1]!)) textEnd--;
            const action = policy.detokenize(gen.tokens.subarray(0, textEnd));
            const turn = { action, sampledTokens: gen.tokens.length, sampleMs: turnSampleMs };
            if (gen.finishReason === "context") {
              state.turns.push({ ...turn, operatorCalls: [], envMs: 0 });
              return yield* new ContextOverflowError({
                message: `the sequence reached the policy's context (${policy.info().contextSize} tokens) after ${builder.size} tokens`,
                needed: builder.size + 1,
                contextSize: policy.info().contextSize,
              });
            }
            if (gen.finishReason === "length" && builder.sampledTokens >= options.maxTokens) {
              // The action was cut by the token budget: score what was written, do not execute it.
              state.turns.push({ ...turn, operatorCalls: [], envMs: 0 });
              return yield* end("max-tokens");
            }
            const e0 = now();
            const step = yield* Semaphore.withPermit(operators, episode.step(action));
            const envMs = now() - e0;
            operatorWaitMs += envMs;
            const operatorCalls: ReadonlyArray<OperatorCall> = step.operatorCalls;
            if (step._tag === "Done") {
              state.turns.push({ ...turn, operatorCalls, envMs });
              outcome.value = {
                reward: step.reward,
                rewardParts: step.rewardParts,
                finishReason: step.finishReason,
              };
              outcome.reason = step.finishReason;
              return;
            }
            state.turns.push({ ...turn, observation: step.observation, operatorCalls, envMs });
            append = policy.renderContinuation([{ role: "tool", content: step.observation }], gen.tokens);
          }
        }),
      );

    const runEpisode = (task: Task, groupId: string, episodeIndex: number): Effect.Effect<Trajectory> =>
      Effect.gen(function* () {
        const state: EpisodeState = { builder: undefined, turns: [] };
        const outcome: { value?: EpisodeOutcome; reason?: FinishReason } = {};
        live++;
        if (live > maxLive) maxLive = live;
        const body = episodeBody(task, episodeIndex, state, outcome);
        const timed =
          deadline === undefined
            ? Effect.map(body, () => Option.some(undefined))
            : Effect.timeoutOption(body, deadline);
        const exit = yield* Effect.exit(timed).pipe(Effect.ensuring(Effect.sync(() => live--)));
        if (Exit.isSuccess(exit)) {
          if (Option.isNone(exit.value)) {
            const ms = Duration.toMillis(deadline ?? Duration.zero);
            const stopped = new EpisodeDeadlineError({
              taskId: task.id,
              deadlineMs: ms,
              message: `episode on task ${task.id} passed its deadline of ${ms} ms`,
            });
            return finished(
              state,
              groupId,
              task,
              "cancelled",
              undefined,
              `${stopped._tag}: ${stopped.message}`,
            );
          }
          return finished(state, groupId, task, outcome.reason ?? "done", outcome.value);
        }
        if (Cause.hasInterruptsOnly(exit.cause)) return yield* Effect.interrupt;
        const failure = Cause.findErrorOption(exit.cause);
        const error = Option.isSome(failure) ? failure.value : Cause.squash(exit.cause);
        const tag =
          typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : "Defect";
        const reason: FinishReason = tag === "ContextOverflowError" ? "context-overflow" : "error";
        return finished(state, groupId, task, reason, undefined, `${tag}: ${messageOf(error)}`);
      });

    const jobs = tasks.flatMap((task, t) =>
      Array.from({ length: options.groupSize }, (_, g) => ({
        task,
        t,
        g,
        groupId: `${prefix}${t}:${task.id}`,
      })),
    );
    const results = yield* Effect.forEach(
      jobs,
      (job, index) =>
        Effect.tap(runEpisode(job.task, job.groupId, index), (trajectory) => {
          const r = options.onTrajectory?.(trajectory);
          return r === undefined ? Effect.void : r;
        }),
      { concurrency: options.maxConcurrentEpisodes },
    );

    const wallMs = now() - started;
    const groups: TrajectoryGroup[] = tasks.map((task, t) => ({
      groupId: `${prefix}${t}:${task.id}`,
      task,
      trajectories: results.slice(t * options.groupSize, (t + 1) * options.groupSize),
    }));
    const finishReasons: Partial<Record<FinishReason, number>> = {};
    let sampled = 0;
    let total = 0;
    let turns = 0;
    for (const tr of results) {
      finishReasons[tr.finishReason] = (finishReasons[tr.finishReason] ?? 0) + 1;
      for (let i = 0; i < tr.mask.length; i++) sampled += tr.mask[i]!;
      total += tr.tokens.length;
      turns += tr.turns.length;
    }
    const n = results.length;
    const occupancy = meter.summary();
    const metrics: RolloutMetrics = {
      episodes: n,
      wallMs,
      episodesPerSecond: wallMs > 0 ? (n * 1000) / wallMs : 0,
      sampledTokens: sampled,
      sampledTokensPerSecond: wallMs > 0 ? (sampled * 1000) / wallMs : 0,
      meanBatchOccupancy: occupancy.mean,
      maxBatchOccupancy: meter.max,
      policyBusyShare: wallMs > 0 ? occupancy.busyMs / wallMs : 0,
      generateCalls: meter.calls,
      operatorWaitMs,
      sampleMs,
      meanTurnsPerEpisode: n > 0 ? turns / n : 0,
      meanSampledTokensPerEpisode: n > 0 ? sampled / n : 0,
      meanTokensPerEpisode: n > 0 ? total / n : 0,
      finishReasons,
      maxLiveEpisodes: maxLive,
    };
    return { groups, metrics };
  });

/**
 * The streaming form of {@link rollout}: emits each trajectory as its episode finishes (finishing
 * order, not task order), e.g. to append it to a trajectory log while the rollout goes on.
 */
export const rolloutStream = (
  tasks: ReadonlyArray<Task>,
  options: Omit<RolloutOptions, "onTrajectory">,
): Stream.Stream<Trajectory, RolloutOptionsError, Policy | Environment> =>
  Stream.callback<Trajectory, RolloutOptionsError, Policy | Environment>((queue) =>
    Effect.forkScoped(
      rollout(tasks, { ...options, onTrajectory: (t) => Effect.asVoid(Queue.offer(queue, t)) }).pipe(
        Effect.matchEffect({
          onFailure: (e) => Queue.fail(queue, e),
          onSuccess: () => Queue.end(queue),
        }),
      ),
    ),
  );
