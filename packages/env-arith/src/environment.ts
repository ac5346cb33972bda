/**
 * The arith environment: one tool (`<tool>lookup: KEY</tool>` → `<info>…</info>`) and a final
 * `<answer>…</answer>`. Reward = 0.9·accuracy + 0.1·format, both in [0, 1].
 */
import {
  type ChatMessage,
  Environment,
  EnvironmentError,
  type EnvironmentShape,
  type Episode,
  type EpisodeOutcome,
  type FinishReason,
  type OperatorCall,
  type StepResult,
  type Task,
} from "@workflow-r1/core";
import { Effect, Layer } from "effect";
import { type ResolvedArithOptions, resolveOptions } from "./options.js";
import { lookupOf } from "./tasks.js";

/** Sampling stops at these, so one assistant turn is one tool call or one answer. */
export const stopSequences: ReadonlyArray<string> = ["</tool>", "</answer>"];

export type Action =
  | { readonly _tag: "Tool"; readonly tool: string; readonly input: string }
  | { readonly _tag: "Answer"; readonly answer: string }
  | { readonly _tag: "Invalid"; readonly reason: string };

const between = (text: string, open: string, close: string): string | undefined => {
  const start = text.indexOf(open);
  if (start < 0) return undefined;
  const end = text.indexOf(close, start + open.length);
  // A turn cut by the token budget has no closing tag; read to its end.
  return text.slice(start + open.length, end < 0 ? undefined : end).trim();
};

/** Read one assistant turn: the first `<answer>` wins over a `<tool>` call. */
export const parseAction = (text: string): Action => {
  const answer = between(text, "<answer>", "</answer>");
  if (answer !== undefined) return { _tag: "Answer", answer };
  const call = between(text, "<tool>", "</tool>");
  if (call === undefined)
    return { _tag: "Invalid", reason: "expected <tool>lookup: KEY</tool> or <answer>VALUE</answer>" };
  const colon = call.indexOf(":");
  if (colon < 0) return { _tag: "Invalid", reason: "expected <tool>lookup: KEY</tool>" };
  return { _tag: "Tool", tool: call.slice(0, colon).trim(), input: call.slice(colon + 1).trim() };
};

/** Score an episode: accuracy of the final answer, format = share of well-formed turns. */
export const score = (
  answer: string | undefined,
  golden: ReadonlyArray<string>,
  validTurns: number,
  turns: number,
  finishReason: FinishReason,
): EpisodeOutcome => {
  const accuracy = answer !== undefined && golden.includes(answer) ? 1 : 0;
  const format = turns === 0 || answer === undefined ? 0 : validTurns / turns;
  return { reward: 0.9 * accuracy + 0.1 * format, rewardParts: { accuracy, format }, finishReason };
};

const reset =
  (options: ResolvedArithOptions) =>
  (task: Task): Effect.Effect<Episode, EnvironmentError> =>
    Effect.suspend(() => {
      const lookup = lookupOf(task);
      if (!lookup)
        return Effect.fail(
          new EnvironmentError({
            message: `task ${task.id} has no metadata.lookup; make tasks with environmentPlugin.tasks`,
          }),
        );
      const golden = task.goldenAnswers ?? [];
      let turns = 0;
      let validTurns = 0;
      let finished = false;
      const end = (answer: string | undefined, reason: FinishReason): EpisodeOutcome => {
        finished = true;
        return score(answer, golden, validTurns, turns, reason);
      };
      const messages: ReadonlyArray<ChatMessage> = [{ role: "user", content: task.question }];
      /** One assistant turn → the next observation, or the end of the episode. */
      const advance = (text: string): StepResult => {
        turns++;
        const action = parseAction(text);
        if (action._tag === "Answer") {
          validTurns++;
          return { _tag: "Done", operatorCalls: [], ...end(action.answer, "answer") };
        }
        let observation: string;
        const operatorCalls: OperatorCall[] = [];
        if (action._tag === "Tool") {
          const known = action.tool === "lookup";
          const value =
            known && Object.hasOwn(lookup.table, action.input) ? lookup.table[action.input] : undefined;
          if (known) validTurns++;
          observation = !known
            ? `<info>error: unknown tool ${action.tool}; use lookup</info>`
            : value === undefined
              ? `<info>error: no key ${action.input}</info>`
              : `<info>${value}</info>`;
          operatorCalls.push({
            operator: action.tool,
            input: action.input,
            output: observation,
            latencyMs: 0,
            ...(value === undefined ? { error: observation } : {}),
          });
        } else observation = `<info>error: ${action.reason}</info>`;
        if (turns >= options.maxTurns) return { _tag: "Done", operatorCalls, ...end(undefined, "max-turns") };
        return { _tag: "Observation", observation, operatorCalls };
      };
      const step = (text: string): Effect.Effect<StepResult, EnvironmentError> =>
        Effect.suspend(() =>
          finished
            ? Effect.fail(new EnvironmentError({ message: `episode of task ${task.id} already finished` }))
            : Effect.succeed(advance(text)),
        );
      const finish = (reason: FinishReason): Effect.Effect<EpisodeOutcome, EnvironmentError> =>
        Effect.sync(() => end(undefined, reason));
      return Effect.succeed({ messages, step, finish });
    });

/** The environment service for resolved options. */
export const makeArithEnvironment = (options: ResolvedArithOptions): EnvironmentShape => ({
  name: "arith",
  stopSequences,
  reset: reset(options),
});

/** `Environment` layer; fails with {@link EnvironmentError} on bad options. */
export const arithEnvironmentLayer = (
  options: Readonly<Record<string, unknown>> = {},
): Layer.Layer<Environment, EnvironmentError> =>
  Layer.effect(Environment, Effect.map(resolveOptions(options), makeArithEnvironment));
