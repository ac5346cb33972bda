/** LocalExecutor over the real llama.cpp policy on a tiny self-generated GGUF (CPU). */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Executor, Policy } from "@workflow-r1/core";
import { createTinyLlama, type TinyModelInfo } from "@workflow-r1/gguf";
import { LlamaCppPolicy } from "@workflow-r1/policy";
import { Effect, Layer, ManagedRuntime } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalExecutor } from "../src/executors/index.js";

let dir = "";
let model: TinyModelInfo;
let runtime: ManagedRuntime.ManagedRuntime<Executor | Policy, unknown>;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "env-qa-local-"));
  model = await createTinyLlama({
    path: path.join(dir, "tiny.gguf"),
    vocab: 300,
    dim: 64,
    layers: 2,
    seed: 3,
  });
  const policy = LlamaCppPolicy.layer({
    modelPath: model.path,
    gpu: false,
    contextSize: 256,
    sequences: 2,
    threads: 2,
  });
  runtime = ManagedRuntime.make(LocalExecutor.layer({ maxTokens: 12 }).pipe(Layer.provideMerge(policy)));
}, 60_000);
afterAll(async () => {
  await runtime?.dispose();
  await rm(dir, { recursive: true, force: true });
});

const messages = [
  { role: "system" as const, content: "You are an operator." },
  { role: "user" as const, content: "Answer the question: what is two plus two?" },
];

describe("LocalExecutor with LlamaCppPolicy", () => {
  it("completes greedily: the text is the detokenized greedy continuation, the same on every call", async () => {
    const [a, b, reference] = await runtime.runPromise(
      Effect.gen(function* () {
        const executor = yield* Executor;
        const policy = yield* Policy;
        const a = yield* executor.complete({ messages, maxTokens: 12 });
        const b = yield* executor.complete({ messages, maxTokens: 12, temperature: 1 });
        // The same greedy continuation straight from the policy.
        const reference = yield* Effect.scoped(
          Effect.gen(function* () {
            const sequence = yield* policy.openSequence(
              policy.renderChat(messages, { addGenerationPrompt: true }),
            );
            return yield* sequence.generate(new Int32Array(0), { temperature: 0, topK: 1, maxTokens: 12 });
          }),
        );
        return [a, b, reference] as const;
      }),
    );
    expect(a).toEqual(b);
    const eot = new Set(
      model.specialTokens["<|im_end|>"] === undefined ? [] : [model.specialTokens["<|im_end|>"]],
    );
    const policyText = await runtime.runPromise(
      Effect.gen(function* () {
        const policy = yield* Policy;
        return policy.detokenize(
          Array.from(reference.tokens).filter((t) => !eot.has(t) && t !== model.eosTokenId),
        );
      }),
    );
    expect(a.text).toBe(policyText);
    expect(a.finishReason).toBe(reference.finishReason === "length" ? "length" : "stop");
  }, 60_000);

  const complete = (request: Parameters<Executor["Service"]["complete"]>[0]) =>
    runtime.runPromise(
      Effect.gen(function* () {
        const executor = yield* Executor;
        return yield* executor.complete(request);
      }),
    );

  it("stops at a stop string and leaves it out of the text", async () => {
    const first = await complete({ messages, maxTokens: 12 });
    // Pick a stop string from the greedy output itself so the stop is certain to fire.
    const stop = first.text.slice(2, 4);
    if (stop.length < 2) return expect(first.text.length).toBeLessThan(4); // too short an output to test a stop
    const stopped = await complete({ messages, maxTokens: 12, stop: [stop] });
    expect(stopped.finishReason).toBe("stop");
    expect(stopped.text.includes(stop)).toBe(false);
    expect(first.text.startsWith(stopped.text)).toBe(true);
  }, 60_000);
});
