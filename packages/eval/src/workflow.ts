/**
 * The `workflow` method: the Workflow-R1 agent, one multi-turn episode per sample in the
 * `Environment` found in context (env-qa's Workflow-R1 QA environment in the CLI). The agent thinks,
 * calls operators (`<tool>…</tool>`), reads their results and ends with `<answer>…</answer>`.
 */
import {
  ContextOverflowError,
  Environment,
  type EnvironmentError,
  type EpisodeOutcome,
  type FinishReason,
  Policy,
  type PolicyError,
  type Task,
} from "@workflow-r1/core";
import { Effect, Option } from "effect";
import { extractAnswer } from "./answers.js";
import { EvaluationError } from "./errors.js";
import { type MethodDefinition, type MethodSettings, type SampleOutput, sampleSeed } from "./methods.js";
import { formatScore } from "./metrics.js";

interface EpisodeText {
  readonly actions: string[];
  /** The observation after each action but the last, as the agent saw it. */
  readonly observations: string[];
  readonly tokens: number;
  readonly operatorCalls: Record<string, number>;
  readonly outcome: EpisodeOutcome;
}

/**
 * Run one episode: the policy samples a turn up to the environment's stop strings, the environment
 * answers with an observation (appended as a tool message) or ends the episode. Turn and context
 * budgets end it through `finish`, which scores what the agent wrote so far.
 */
export const runEpisode = (
  task: Task,
  settings: MethodSettings,
  index: number,
): Effect.Effect<EpisodeText, PolicyError | EnvironmentError, Policy | Environment> =>
  Effect.scoped(
    Effect.gen(function* () {
      const policy = yield* Policy;
      const environment = yield* Environment;
      const episode = yield* environment.reset(task);
      const actions: string[] = [];
      const observations: string[] = [];
      const operatorCalls: Record<string, number> = {};
      let tokens = 0;
      const finish = (reason: FinishReason) =>
        Effect.map(episode.finish(reason), (outcome) => ({
          actions,
          observations,
          tokens,
          operatorCalls,
          outcome,
        }));
      const opened = yield* Effect.result(
        policy.openSequence(policy.renderChat(episode.messages, { addGenerationPrompt: true })),
      );
      if (opened._tag === "Failure") {
        if (opened.failure instanceof ContextOverflowError) return yield* finish("context-overflow");
        return yield* Effect.fail(opened.failure);
      }
      const sequence = opened.success;
      let append: Int32Array = new Int32Array(0);
      for (let turn = 0; ; turn++) {
        if (turn >= settings.maxTurns) return yield* finish("max-turns");
        const sampled = yield* Effect.result(
          sequence.generate(append, {
            maxTokens: settings.maxTokens,
            temperature: settings.temperature,
            topP: settings.topP,
            topK: settings.topK,
            seed: sampleSeed(settings, task, index * 1000 + turn),
            stop: environment.stopSequences,
          }),
        );
        if (sampled._tag === "Failure") {
          if (sampled.failure instanceof ContextOverflowError) return yield* finish("context-overflow");
          return yield* Effect.fail(sampled.failure);
        }
        const generation = sampled.success;
        tokens += generation.tokens.length;
        const action = policy.detokenize(generation.tokens);
        actions.push(action);
        const step = yield* episode.step(action);
        for (const call of step.operatorCalls)
          operatorCalls[call.operator] = (operatorCalls[call.operator] ?? 0) + 1;
        if (step._tag === "Done") return { actions, observations, tokens, operatorCalls, outcome: step };
        observations.push(step.observation);
        append = policy.renderContinuation([{ role: "tool", content: step.observation }], generation.tokens);
      }
    }),
  );

/**
 * Format validity of an episode: Workflow-R1's format check (`(think tool info)* think answer`)
 * over the transcript of actions and observations passes (score 0, not the -0.5 penalty).
 */
export const workflowFormatValid = (
  actions: ReadonlyArray<string>,
  observations: ReadonlyArray<string>,
): boolean =>
  formatScore(
    actions
      .flatMap((action, i) => {
        const o = observations[i];
        // The transcript the reward reads: each observation as the agent saw it, inside <info>.
        return o === undefined
          ? [action]
          : [action, o.trimStart().startsWith("<info>") ? o : `<info>${o}</info>`];
      })
      .join("\n"),
  ) === 0;

const formatOf = (episode: EpisodeText): number =>
  workflowFormatValid(episode.actions, episode.observations) ? 1 : 0;

export const workflowMethod: MethodDefinition = {
  description: "the Workflow-R1 agent: think, call operators, answer, in the Environment from context",
  run: (task, settings) =>
    Effect.gen(function* () {
      const environment = yield* Effect.serviceOption(Environment);
      if (Option.isNone(environment))
        return yield* Effect.fail(
          new EvaluationError({
            message:
              "method workflow needs an Environment in context (env-qa's Workflow-R1 QA environment, " +
              "built by runEvalCommand from --executor-url)",
            method: "workflow",
          }),
        );
      const one = (index: number) =>
        runEpisode(task, settings, index).pipe(
          Effect.map(
            (episode): SampleOutput => ({
              text: episode.actions.join("\n"),
              prediction: extractAnswer(episode.actions.at(-1) ?? ""),
              format: formatOf(episode),
              turns: episode.actions.length,
              tokens: episode.tokens,
              operatorCalls: episode.operatorCalls,
              finishReason: episode.outcome.finishReason,
            }),
          ),
          Effect.catch((error) =>
            Effect.succeed<SampleOutput>({
              text: "",
              prediction: null,
              format: 0,
              turns: 0,
              tokens: 0,
              operatorCalls: {},
              finishReason: "error",
              error: `${error._tag}: ${error.message}`,
            }),
          ),
          Effect.provideService(Environment, environment.value),
        );
      const samples = yield* Effect.forEach(
        Array.from({ length: settings.samples }, (_, i) => i),
        one,
        { concurrency: settings.concurrency },
      );
      return { samples };
    }),
};
