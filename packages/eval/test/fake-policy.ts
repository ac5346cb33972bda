/**
 * A scripted in-memory Policy for unit tests of the runner alone: characters are tokens, and
 * `answer(prompt, seed)` decides what the "model" writes. Integration tests use the real llama.cpp policy.
 */
import { Policy, PolicyError, type PolicyShape } from "@workflow-r1/core";
import { Effect, Layer } from "effect";

export interface FakePolicy {
  readonly layer: Layer.Layer<Policy>;
  /** Number of `generate` calls so far. */
  readonly calls: () => number;
  /** Text appended to sequences before each `generate` (observations), in call order. */
  readonly appended: () => ReadonlyArray<string>;
}

export const fakePolicy = (
  answer: (prompt: string, seed: number, turn: number) => string | Error,
): FakePolicy => {
  let calls = 0;
  const appendedTexts: string[] = [];
  const tokenize = (text: string) => Int32Array.from([...text].map((c) => c.codePointAt(0)!));
  const detokenize = (tokens: ArrayLike<number>) => String.fromCodePoint(...Array.from(tokens));
  const shape: PolicyShape = {
    info: () => ({ modelPath: "fake", contextSize: 4096, vocabularySize: 0x110000, endOfTurnTokens: [] }),
    tokenize,
    detokenize,
    renderChat: (messages, options) =>
      tokenize(
        messages.map((m) => `${m.role}: ${m.content}\n`).join("") +
          (options?.addGenerationPrompt ? "assistant: " : ""),
      ),
    renderContinuation: (messages) =>
      tokenize(messages.map((m) => `${m.role}: ${m.content}\n`).join("") + "assistant: "),
    openSequence: (prompt) => {
      let turn = 0;
      // Holds every token like a real sequence does, so rollout's prefix check passes.
      let held: number[] = Array.from(prompt);
      return Effect.succeed({
        tokens: () => Int32Array.from(held),
        generate: (append, options) =>
          Effect.suspend(() => {
            calls++;
            held = held.concat(Array.from(append));
            if (append.length > 0) appendedTexts.push(detokenize(append));
            const text = answer(detokenize(prompt), options.seed ?? 0, turn++);
            if (text instanceof Error) return Effect.fail(new PolicyError({ message: text.message }));
            const tokens = tokenize(text).slice(0, options.maxTokens);
            held = held.concat(Array.from(tokens));
            return Effect.succeed({
              tokens,
              logprobs: new Float32Array(tokens.length),
              finishReason: tokens.length < text.length ? ("length" as const) : ("stop" as const),
            });
          }),
      });
    },
    score: () => Effect.succeed(new Float32Array(0)),
    reload: () => Effect.void,
  };
  return { layer: Layer.succeed(Policy, shape), calls: () => calls, appended: () => appendedTexts };
};
