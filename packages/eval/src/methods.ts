/**
 * Evaluation methods: how a policy answers a question. Built in: `direct`, `cot`, `sc`
 * (self-consistency); `workflow` (the Workflow-R1 agent) lives in ./workflow.ts. The registry of
 * methods by name is ./registry.ts.
 */
import {
  type ContextOverflowError,
  Executor,
  type ExecutorError,
  Policy,
  type PolicyError,
  type PolicyShape,
  type Task,
} from "@workflow-r1/core";
import { Effect, Option } from "effect";
import { cotFormatValid, directFormatValid, extractAnswer, majorityVote } from "./answers.js";
import type { EvaluationError } from "./errors.js";

/** Settings every method receives (after defaults). */
export interface MethodSettings {
  /** Samples per question (k). */
  readonly samples: number;
  /** Tokens the policy may sample per turn. */
  readonly maxTokens: number;
  /** Turns per episode (agent methods). */
  readonly maxTurns: number;
  /** Tokens per episode, observations included (agent methods). */
  readonly maxEpisodeTokens: number;
  readonly temperature: number;
  readonly topP: number;
  readonly topK: number;
  /** Base seed; sample i of a question uses a seed derived from it, the task id and i. */
  readonly seed: number;
  /** Episodes in flight at once within one question (agent methods). */
  readonly concurrency: number;
  /**
   * Who answers the single-turn methods (direct, cot, sc): the policy GGUF (default) or the
   * executor endpoint in context — the paper's baselines are the executor answering alone.
   */
  readonly answerer: "policy" | "executor";
}

/** One sampled answer, before scoring against the golden answers. */
export interface SampleOutput {
  /** Everything the policy wrote (all turns). */
  readonly text: string;
  readonly prediction: string | null;
  /** 1 when the output follows the method's format. */
  readonly format: number;
  readonly turns: number;
  readonly tokens: number;
  readonly operatorCalls: Readonly<Record<string, number>>;
  readonly finishReason: string;
  readonly error?: string;
}

export interface MethodOutput {
  readonly samples: ReadonlyArray<SampleOutput>;
  /**
   * The method's single answer when it aggregates its samples (self-consistency's vote). When
   * absent, a question's scores are the mean over its samples (mean@k).
   */
  readonly answer?: { readonly prediction: string | null };
}

export interface MethodDefinition {
  readonly description: string;
  /** Samples per question when the caller does not say (default 1). */
  readonly defaultSamples?: number;
  /** Sampling temperature when the caller does not say (default: 0 for one sample, else 1). */
  readonly defaultTemperature?: number;
  /** Turns per episode when the caller does not say (default 8). */
  readonly defaultMaxTurns?: number;
  /**
   * Answer one task with `settings.samples` samples. Sampling failures belong in a sample's
   * `error` (the sample is scored 0 and counted); fail only when the method cannot run at all.
   */
  readonly run: (
    task: Task,
    settings: MethodSettings,
  ) => Effect.Effect<MethodOutput, EvaluationError, Policy>;
}

/** A 32-bit FNV-1a hash, to give every (task, sample) its own reproducible seed. */
export const hashString = (text: string): number => {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
};

export const sampleSeed = (settings: MethodSettings, task: Task, index: number): number =>
  (hashString(`${settings.seed}:${task.id}:${index}`) & 0x7fffffff) >>> 0;

export const directPrompt = (question: string): string =>
  "Answer the given question directly. Give only the final answer, a few words at most, between " +
  `<answer> and </answer>, without any explanation. For example, <answer> Beijing </answer>.\nQuestion: ${question}`;

export const cotPrompt = (question: string): string =>
  "Answer the given question. First think step by step between <think> and </think>, then give the " +
  "final answer, a few words at most, between <answer> and </answer>. For example, " +
  `<think> ... </think> <answer> Beijing </answer>.\nQuestion: ${question}`;

const errorText = (error: PolicyError | ContextOverflowError | ExecutorError): string =>
  `${error._tag}: ${error.message}`;

const failedSample = (error: string): SampleOutput => ({
  text: "",
  prediction: null,
  format: 0,
  turns: 0,
  tokens: 0,
  operatorCalls: {},
  finishReason: "error",
  error,
});

/** The same single-turn answers from the executor endpoint in context (chat completions). */
const sampleOnExecutor = (
  prompt: string,
  settings: MethodSettings,
  formatValid: (text: string) => boolean,
): Effect.Effect<SampleOutput[], never> =>
  Effect.gen(function* () {
    const executor = yield* Effect.serviceOption(Executor);
    if (Option.isNone(executor))
      return Array.from({ length: settings.samples }, () =>
        failedSample("no executor endpoint: answering on the executor needs --executor-url"),
      );
    const one = () =>
      executor.value
        .complete({
          messages: [{ role: "user", content: prompt }],
          temperature: settings.temperature,
          maxTokens: settings.maxTokens,
          stop: ["</answer>"],
        })
        .pipe(
          Effect.map((completion): SampleOutput => {
            // Servers drop the stop string; put it back so the answer parses as the policy's does.
            const text =
              completion.text.includes("<answer>") && !completion.text.includes("</answer>")
                ? `${completion.text}</answer>`
                : completion.text;
            return {
              text,
              prediction: extractAnswer(text),
              format: formatValid(text) ? 1 : 0,
              turns: 1,
              tokens: 0,
              operatorCalls: {},
              finishReason: completion.finishReason,
            };
          }),
          Effect.catch((error) => Effect.succeed(failedSample(errorText(error)))),
        );
    return yield* Effect.forEach(Array.from({ length: settings.samples }), one, {
      concurrency: settings.concurrency,
    });
  });

/**
 * Sample `settings.samples` single-turn answers to one user prompt, concurrently (the policy
 * batches concurrent sequences), each in its own sequence freed when done.
 */
export const sampleSingleTurn = (
  task: Task,
  prompt: string,
  settings: MethodSettings,
  formatValid: (text: string) => boolean,
): Effect.Effect<SampleOutput[], never, Policy> =>
  Effect.gen(function* () {
    if (settings.answerer === "executor") return yield* sampleOnExecutor(prompt, settings, formatValid);
    const policy: PolicyShape = yield* Policy;
    const promptTokens = policy.renderChat([{ role: "user", content: prompt }], {
      addGenerationPrompt: true,
    });
    const one = (index: number) =>
      Effect.scoped(
        Effect.gen(function* () {
          const sequence = yield* policy.openSequence(promptTokens);
          return yield* sequence.generate(new Int32Array(0), {
            maxTokens: settings.maxTokens,
            temperature: settings.temperature,
            topP: settings.topP,
            topK: settings.topK,
            seed: sampleSeed(settings, task, index),
            stop: ["</answer>"],
          });
        }),
      ).pipe(
        Effect.map((generation): SampleOutput => {
          const text = policy.detokenize(generation.tokens);
          return {
            text,
            prediction: extractAnswer(text),
            format: formatValid(text) ? 1 : 0,
            turns: 1,
            tokens: generation.tokens.length,
            operatorCalls: {},
            finishReason: generation.finishReason,
          };
        }),
        Effect.catch((error) => Effect.succeed(failedSample(errorText(error)))),
      );
    return yield* Effect.forEach(
      Array.from({ length: settings.samples }, (_, i) => i),
      one,
      { concurrency: settings.concurrency },
    );
  });

export const directMethod: MethodDefinition = {
  description: "answer only: the question, then <answer>…</answer> (no reasoning, no operators)",
  run: (task, settings) =>
    Effect.map(
      sampleSingleTurn(task, directPrompt(task.question), settings, directFormatValid),
      (samples) => ({
        samples,
      }),
    ),
};

export const cotMethod: MethodDefinition = {
  description: "chain of thought: <think>…</think> then <answer>…</answer>",
  run: (task, settings) =>
    Effect.map(sampleSingleTurn(task, cotPrompt(task.question), settings, cotFormatValid), (samples) => ({
      samples,
    })),
};

export const selfConsistencyMethod: MethodDefinition = {
  description: "self-consistency: k chain-of-thought samples, majority vote on normalised answers",
  defaultSamples: 5,
  defaultTemperature: 1,
  run: (task, settings) =>
    Effect.map(sampleSingleTurn(task, cotPrompt(task.question), settings, cotFormatValid), (samples) => ({
      samples,
      answer: { prediction: majorityVote(samples.map((s) => s.prediction)).prediction },
    })),
};
