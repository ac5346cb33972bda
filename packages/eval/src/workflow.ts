/**
 * The `workflow` method: the Workflow-R1 agent, one multi-turn episode per sample, run by
 * `@workflow-r1/rollout` in the `Environment` found in context (env-qa's `WorkflowR1Env` in the
 * CLI). The agent thinks, calls operators (`<tool>…</tool>`), reads their results (`<info>…</info>`)
 * and ends with `<answer>…</answer>`.
 */
import { Environment, type Trajectory } from "@workflow-r1/core";
import { rollout } from "@workflow-r1/rollout";
import { Effect, Option } from "effect";
import { extractAnswer } from "./answers.js";
import { EvaluationError } from "./errors.js";
import { type MethodDefinition, type SampleOutput, sampleSeed } from "./methods.js";
import { formatScore } from "./metrics.js";

/** What eval reads from one trajectory: the text of each turn and the episode's cost. */
export const episodeSample = (trajectory: Trajectory): SampleOutput => {
  const actions = trajectory.turns.map((t) => t.action);
  const observations = trajectory.turns.flatMap((t) => (t.observation === undefined ? [] : [t.observation]));
  const operatorCalls: Record<string, number> = {};
  for (const turn of trajectory.turns)
    for (const call of turn.operatorCalls) {
      operatorCalls[call.operator] = (operatorCalls[call.operator] ?? 0) + 1;
      // Failed operator calls (executor outages, …) get their own column in the report.
      if (call.error !== undefined) operatorCalls["failed"] = (operatorCalls["failed"] ?? 0) + 1;
    }
  return {
    text: actions.join("\n"),
    prediction: extractAnswer(actions.at(-1) ?? ""),
    format: workflowFormatValid(actions, observations) ? 1 : 0,
    turns: actions.length,
    tokens: trajectory.turns.reduce((a, t) => a + t.sampledTokens, 0),
    operatorCalls,
    finishReason: trajectory.finishReason,
    ...(trajectory.error === undefined ? {} : { error: trajectory.error }),
  };
};

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

export const workflowMethod: MethodDefinition = {
  description: "the Workflow-R1 agent: think, call operators, answer, in the Environment from context",
  // The authors' limits: 20 operator calls, so 21 assistant turns, and 8,192 tokens an episode.
  defaultMaxTurns: 21,
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
      // One rollout per sample, each with its own seed (a group would share one); the samples run
      // concurrently, so the policy still decodes them in one batch.
      const one = (index: number) =>
        rollout([task], {
          groupSize: 1,
          maxConcurrentEpisodes: 1,
          maxTurns: settings.maxTurns,
          maxTokens: settings.maxEpisodeTokens,
          maxTokensPerTurn: settings.maxTokens,
          sampling: {
            temperature: settings.temperature,
            topP: settings.topP,
            topK: settings.topK,
            seed: sampleSeed(settings, task, index),
          },
        }).pipe(
          Effect.map((result) => episodeSample(result.groups[0]!.trajectories[0]!)),
          Effect.mapError(
            (error) =>
              new EvaluationError({ message: `rollout: ${error.message}`, method: "workflow", cause: error }),
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
