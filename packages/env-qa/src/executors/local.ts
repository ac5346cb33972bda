/**
 * An `Executor` over any core `Policy` (e.g. the llama.cpp policy on a GGUF): renders the chat with
 * the model's template, samples (greedily by default) and decodes. This module depends only on the
 * `Policy` contract; `LocalModelExecutor` (local-model.ts) builds one over its own llama.cpp model.
 */
import {
  type Completion,
  type CompletionRequest,
  Executor,
  ExecutorHttpError,
  type ExecutorShape,
  ExecutorTimeoutError,
  Policy,
  type PolicyShape,
} from "@workflow-r1/core";
import { Duration, Effect, Layer } from "effect";

export interface LocalExecutorConfig {
  /** Tokens per completion when the request does not say. Default 512. */
  readonly maxTokens?: number;
  /** Time limit per completion in milliseconds. Default: none. */
  readonly timeoutMs?: number;
  /**
   * `"greedy"` (default): every completion is greedy (top-k 1), whatever temperature the request
   * asks. `"request"`: the request's temperature decides, as an OpenAI-compatible server does —
   * 0 (or none) is greedy, above 0 samples at that temperature with no top-k / top-p truncation.
   */
  readonly sampling?: "greedy" | "request";
}

/** The sampling options of one completion (see {@link LocalExecutorConfig.sampling}). */
export const localSamplingOptions = (
  request: CompletionRequest,
  config: LocalExecutorConfig,
): { readonly temperature: number; readonly topK: number } => {
  const temperature = config.sampling === "request" ? (request.temperature ?? 0) : 0;
  return temperature > 0 ? { temperature, topK: 0 } : { temperature: 0, topK: 1 };
};

/** A readable label for errors (there is no URL). */
const label = (policy: PolicyShape): string => `local:${policy.info().modelPath}`;

export const makeLocalExecutor = (policy: PolicyShape, config: LocalExecutorConfig = {}): ExecutorShape => {
  const complete = (
    request: CompletionRequest,
  ): Effect.Effect<Completion, ExecutorHttpError | ExecutorTimeoutError> => {
    const run = Effect.scoped(
      Effect.gen(function* () {
        const prompt = policy.renderChat(request.messages, { addGenerationPrompt: true });
        const sequence = yield* policy.openSequence(prompt);
        // Greedy decoding (top-k 1) so operator outputs are reproducible, unless the config lets
        // the request's temperature decide.
        const generation = yield* sequence.generate(new Int32Array(0), {
          ...localSamplingOptions(request, config),
          maxTokens: request.maxTokens ?? config.maxTokens ?? 512,
          ...(request.stop === undefined || request.stop.length === 0 ? {} : { stop: request.stop }),
        });
        const endOfTurn = new Set(policy.info().endOfTurnTokens);
        const tokens = Array.from(generation.tokens).filter((t) => !endOfTurn.has(t));
        let text = policy.detokenize(tokens);
        // OpenAI semantics: the stop string is not part of the completion.
        if (generation.finishReason === "stop" && generation.stopString !== undefined) {
          const at = text.lastIndexOf(generation.stopString);
          if (at >= 0) text = text.slice(0, at);
        }
        const finishReason: Completion["finishReason"] =
          generation.finishReason === "length" || generation.finishReason === "context" ? "length" : "stop";
        return { text, finishReason };
      }),
    ).pipe(
      Effect.mapError(
        (e) =>
          new ExecutorHttpError({
            message: `executor ${label(policy)}: ${e._tag}: ${e.message}`,
            url: label(policy),
            attempts: 1,
          }),
      ),
    );
    const timeoutMs = config.timeoutMs;
    if (timeoutMs === undefined) return run;
    return run.pipe(
      Effect.timeoutOrElse({
        duration: Duration.millis(timeoutMs),
        orElse: () =>
          Effect.fail(
            new ExecutorTimeoutError({
              message: `executor ${label(policy)}: no completion within ${timeoutMs} ms`,
              url: label(policy),
              timeoutMs,
              attempts: 1,
            }),
          ),
      }),
    );
  };
  return { complete };
};

export const LocalExecutor = {
  /** An `Executor` layer over the `Policy` in context (greedy decoding). */
  layer: (config: LocalExecutorConfig = {}): Layer.Layer<Executor, never, Policy> =>
    Layer.effect(
      Executor,
      Effect.gen(function* () {
        const policy = yield* Policy;
        return makeLocalExecutor(policy, config);
      }),
    ),
  make: makeLocalExecutor,
} as const;
