/**
 * The episode engine shared by every environment of this package: parse each assistant turn, run
 * the operator it calls (or end on the answer), wrap and truncate the observation, count the
 * operator budget, and score the transcript with the Workflow-R1 reward.
 */
import {
  type ChatMessage,
  EnvironmentError,
  type Episode,
  type EpisodeOutcome,
  type FinishReason,
  type OperatorCall,
  type StepResult,
} from "@workflow-r1/core";
import { Cause, Effect, Exit } from "effect";
import { FORMAT_WARNING, neutralizeAnswerTags, parseTurn, truncateMiddle, wrapInfo } from "./protocol.js";
import { buildTranscript, rewardParts } from "./reward.js";

export interface EpisodeSettings {
  readonly taskId: string;
  readonly messages: ReadonlyArray<ChatMessage>;
  readonly goldenAnswers: ReadonlyArray<string>;
  /** Operator calls allowed; a call beyond it ends the episode ("operator-budget"). */
  readonly operatorBudget: number;
  /** Observations longer than this (in characters, before wrapping) are cut in the middle. */
  readonly maxObservationChars: number;
  readonly operatorNames: ReadonlyArray<string>;
  /** Run an operator the agent called by a known name; a failure becomes an error observation. */
  readonly runOperator: (name: string, input: string) => Effect.Effect<string, unknown>;
  /**
   * When this returns an error, the episode refuses to go on: `step` and `finish` fail with it
   * instead of showing the agent another observation (e.g. the executor is down). Checked before
   * each step and after each failed operator call.
   */
  readonly stopped?: () => EnvironmentError | undefined;
  /**
   * Per-episode counters (e.g. executor calls and failures), added to the outcome's `rewardParts`
   * when the episode ends. They are not part of the reward.
   */
  readonly diagnostics?: () => Readonly<Record<string, number>>;
}

/** Score a transcript: reward = format + answer, with EM, sub-EM and F1 in the parts. */
export const scoreTranscript = (
  transcript: string,
  goldenAnswers: ReadonlyArray<string>,
  finishReason: FinishReason,
): EpisodeOutcome => {
  const parts = rewardParts(transcript, goldenAnswers);
  return { reward: parts.format + parts.answer, rewardParts: { ...parts }, finishReason };
};

const errorMessage = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause);
  if (error instanceof Error) return error.message;
  if (typeof error === "object" && error !== null && "message" in error) return String(error.message);
  return String(error);
};

/** A live episode over the Workflow-R1 protocol. */
export const makeEpisode = (settings: EpisodeSettings): Episode => {
  const actions: string[] = [];
  const observations: string[] = [];
  let callsUsed = 0;
  let finished = false;

  const end = (reason: FinishReason): EpisodeOutcome => {
    finished = true;
    const outcome = scoreTranscript(buildTranscript(actions, observations), settings.goldenAnswers, reason);
    const diagnostics = settings.diagnostics?.();
    return diagnostics === undefined
      ? outcome
      : { ...outcome, rewardParts: { ...outcome.rewardParts, ...diagnostics } };
  };

  /** Fails with the stop, when there is one. */
  const checkStopped: Effect.Effect<void, EnvironmentError> = Effect.suspend(() => {
    const stop = settings.stopped?.();
    return stop === undefined ? Effect.void : Effect.fail(stop);
  });

  const observe = (text: string, operatorCalls: ReadonlyArray<OperatorCall>): StepResult => {
    const observation = wrapInfo(truncateMiddle(text, settings.maxObservationChars));
    observations.push(observation);
    return { _tag: "Observation", observation, operatorCalls };
  };

  const callOperator = (name: string, input: string): Effect.Effect<StepResult, EnvironmentError> =>
    Effect.gen(function* () {
      const started = performance.now();
      const exit = yield* Effect.exit(settings.runOperator(name, input));
      const latencyMs = performance.now() - started;
      if (Exit.isSuccess(exit))
        return observe(neutralizeAnswerTags(exit.value), [
          { operator: name, input, output: exit.value, latencyMs },
        ]);
      if (Cause.hasInterruptsOnly(exit.cause)) return yield* Effect.interrupt;
      // The failure may have been the one that stopped the environment (or came after the stop).
      yield* checkStopped;
      const error = errorMessage(exit.cause);
      const output = neutralizeAnswerTags(`Error: operator ${name} failed: ${error}`);
      return observe(output, [{ operator: name, input, output, latencyMs, error }]);
    });

  const advance = (action: string): Effect.Effect<StepResult, EnvironmentError> =>
    Effect.suspend(() => {
      actions.push(action);
      const turn = parseTurn(action);
      switch (turn._tag) {
        case "Answer":
          return Effect.succeed({ _tag: "Done", operatorCalls: [], ...end("answer") } as const);
        case "Invalid":
          return Effect.succeed(observe(FORMAT_WARNING, []));
        case "BadToolCall":
        case "ToolCall": {
          if (callsUsed >= settings.operatorBudget)
            return Effect.succeed({ _tag: "Done", operatorCalls: [], ...end("operator-budget") } as const);
          callsUsed++;
          if (turn._tag === "BadToolCall") return Effect.succeed(observe(turn.message, []));
          if (!settings.operatorNames.includes(turn.operator))
            return Effect.succeed(
              observe(
                `Unknown operator "${turn.operator}". Available operators: ${settings.operatorNames.join(", ")}. Use <tool>OperatorName: input</tool>.`,
                [],
              ),
            );
          return callOperator(turn.operator, turn.input);
        }
      }
    });

  return {
    messages: settings.messages,
    step: (action) =>
      Effect.suspend(() =>
        finished
          ? Effect.fail(
              new EnvironmentError({ message: `episode of task ${settings.taskId} already finished` }),
            )
          : Effect.andThen(checkStopped, advance(action)),
      ),
    finish: (reason) =>
      Effect.suspend(() =>
        finished
          ? Effect.fail(
              new EnvironmentError({ message: `episode of task ${settings.taskId} already finished` }),
            )
          : Effect.andThen(
              checkStopped,
              Effect.sync(() => end(reason)),
            ),
      ),
  };
};
