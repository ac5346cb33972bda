/**
 * The arith environment: a calculator tool (`<calc>a+b</calc>` → `<result>n</result>`, one binary
 * operation per call) and a final `<answer>n</answer>`.
 * Reward = 0.8·accuracy + 0.1·progress + 0.1·format, each part in [0, 1]:
 * - accuracy: the answer equals the value of the expression;
 * - progress: share of the chain's steps the agent computed with the calculator, in order
 *   (each intermediate result is checked, so a partly right episode still gets a signal);
 * - format: share of well-formed turns (0 when the episode ends without an answer).
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
import { type Operator, type ResolvedArithOptions, resolveOptions } from "./options.js";
import { type ArithChain, apply, chainOf } from "./tasks.js";

/** Sampling stops at these, so one assistant turn is one calculator call or one answer. */
export const stopSequences: ReadonlyArray<string> = ["</calc>", "</answer>"];

export interface Calculation {
  readonly a: number;
  readonly op: Operator;
  readonly b: number;
}

export type Action =
  | { readonly _tag: "Calc"; readonly calculation: Calculation }
  | { readonly _tag: "Answer"; readonly answer: string }
  | { readonly _tag: "Invalid"; readonly reason: string };

const between = (text: string, open: string, close: string): string | undefined => {
  const start = text.indexOf(open);
  if (start < 0) return undefined;
  const end = text.indexOf(close, start + open.length);
  // A turn cut by the token budget has no closing tag; read to its end.
  return text.slice(start + open.length, end < 0 ? undefined : end).trim();
};

const calculationPattern = /^(\d{1,6})\s*([+\-*])\s*(\d{1,6})$/;

/** Read one assistant turn: an `<answer>` wins over a `<calc>` call. */
export const parseAction = (text: string): Action => {
  const answer = between(text, "<answer>", "</answer>");
  if (answer !== undefined) return { _tag: "Answer", answer };
  const call = between(text, "<calc>", "</calc>");
  if (call === undefined)
    return { _tag: "Invalid", reason: "expected <calc>a+b</calc> or <answer>n</answer>" };
  const match = calculationPattern.exec(call);
  if (!match) return { _tag: "Invalid", reason: "expected one operation: a+b, a-b or a*b" };
  return {
    _tag: "Calc",
    calculation: { a: Number(match[1]), op: match[2] as Operator, b: Number(match[3]) },
  };
};

/** Does `c` compute step `index` of the chain? `+` and `*` accept either operand order. */
export const computesStep = (chain: ArithChain, index: number, c: Calculation): boolean => {
  const step = chain.steps[index];
  if (!step || c.op !== step.op) return false;
  const current = index === 0 ? chain.start : chain.values[index - 1];
  return (
    (c.a === current && c.b === step.operand) || (c.op !== "-" && c.a === step.operand && c.b === current)
  );
};

/** Score an episode from what the agent did. */
export const score = (
  chain: ArithChain,
  answer: string | undefined,
  stepsDone: number,
  validTurns: number,
  turns: number,
  finishReason: FinishReason,
): EpisodeOutcome => {
  const accuracy = answer !== undefined && answer === String(chain.values[chain.values.length - 1]) ? 1 : 0;
  const progress = stepsDone / chain.steps.length;
  const format = turns === 0 || answer === undefined ? 0 : validTurns / turns;
  return {
    reward: 0.8 * accuracy + 0.1 * progress + 0.1 * format,
    rewardParts: { accuracy, progress, format },
    finishReason,
  };
};

const reset =
  (options: ResolvedArithOptions) =>
  (task: Task): Effect.Effect<Episode, EnvironmentError> =>
    Effect.suspend(() => {
      const chain = chainOf(task);
      if (!chain)
        return Effect.fail(
          new EnvironmentError({
            message: `task ${task.id} has no metadata.arith chain; make tasks with environmentPlugin.tasks`,
          }),
        );
      let turns = 0;
      let validTurns = 0;
      let stepsDone = 0;
      let finished = false;
      const end = (answer: string | undefined, reason: FinishReason): EpisodeOutcome => {
        finished = true;
        return score(chain, answer, stepsDone, validTurns, turns, reason);
      };
      const messages: ReadonlyArray<ChatMessage> = [{ role: "user", content: task.question }];
      /** One assistant turn → the calculator's result, or the end of the episode. */
      const advance = (text: string): StepResult => {
        turns++;
        const action = parseAction(text);
        if (action._tag === "Answer") {
          validTurns++;
          return { _tag: "Done", operatorCalls: [], ...end(action.answer, "answer") };
        }
        let observation: string;
        const operatorCalls: OperatorCall[] = [];
        if (action._tag === "Calc") {
          validTurns++;
          const { a, op, b } = action.calculation;
          if (computesStep(chain, stepsDone, action.calculation)) stepsDone++;
          observation = `<result>${apply(a, op, b)}</result>`;
          operatorCalls.push({ operator: "calc", input: `${a}${op}${b}`, output: observation, latencyMs: 0 });
        } else observation = `<result>error: ${action.reason}</result>`;
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
