/** Unit tests of LocalExecutor over a scripted character-level Policy (the llama.cpp test is separate). */
import {
  type ChatMessage,
  Executor,
  ExecutorHttpError,
  type Generation,
  Policy,
  PolicyError,
  type PolicyShape,
  type SamplingOptions,
} from "@workflow-r1/core";
import { Effect, Exit, Layer } from "effect";
import { describe, expect, it } from "vitest";
import { LocalExecutor } from "../src/executors/index.js";

const EOT = 0;
const encode = (text: string) => Int32Array.from(Array.from(text, (c) => c.codePointAt(0) ?? 0));
const decode = (tokens: ArrayLike<number>) => String.fromCodePoint(...Array.from(tokens));

interface Script {
  readonly reply: (prompt: string) => {
    text: string;
    finishReason: Generation["finishReason"];
    stopString?: string;
    eot?: boolean;
  };
  readonly fail?: boolean;
}

const fakePolicy = (script: Script) => {
  const calls: { prompt: string; options: SamplingOptions }[] = [];
  let open = 0;
  const policy: PolicyShape = {
    info: () => ({
      modelPath: "/models/fake.gguf",
      contextSize: 4096,
      vocabularySize: 0x10ffff,
      endOfTurnTokens: [EOT],
    }),
    tokenize: encode,
    detokenize: decode,
    renderChat: (messages: ReadonlyArray<ChatMessage>, options) =>
      encode(
        `${messages.map((m) => `<${m.role}>${m.content}`).join("")}${options?.addGenerationPrompt ? "<assistant>" : ""}`,
      ),
    renderContinuation: () => new Int32Array(0),
    openSequence: (prompt) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          open++;
          return {
            tokens: () => prompt,
            generate: (_append: Int32Array, options: SamplingOptions) => {
              calls.push({ prompt: decode(prompt), options });
              if (script.fail) return Effect.fail(new PolicyError({ message: "decode failed" }));
              const r = script.reply(decode(prompt));
              const tokens = encode(r.text);
              const withEot = r.eot ? Int32Array.from([...tokens, EOT]) : tokens;
              return Effect.succeed<Generation>({
                tokens: withEot,
                logprobs: new Float32Array(withEot.length),
                finishReason: r.finishReason,
                ...(r.stopString === undefined ? {} : { stopString: r.stopString }),
              });
            },
          };
        }),
        () => Effect.sync(() => open--),
      ),
    score: () => Effect.succeed(new Float32Array(0)),
    reload: () => Effect.void,
  };
  return { policy, calls, openSequences: () => open };
};

const run = (fake: ReturnType<typeof fakePolicy>, request: Parameters<Executor["Service"]["complete"]>[0]) =>
  Effect.runPromiseExit(
    Effect.gen(function* () {
      const executor = yield* Executor;
      return yield* executor.complete(request);
    }).pipe(
      Effect.provide(
        LocalExecutor.layer({ maxTokens: 64 }).pipe(Layer.provide(Layer.succeed(Policy, fake.policy))),
      ),
    ),
  );

describe("LocalExecutor over a Policy", () => {
  it("renders the chat with a generation prompt, samples greedily and drops end-of-turn tokens", async () => {
    const fake = fakePolicy({
      reply: (p) => ({ text: `saw ${p.length} chars`, finishReason: "eos", eot: true }),
    });
    const exit = await run(fake, { messages: [{ role: "user", content: "hello" }], temperature: 0.9 });
    const prompt = "<user>hello<assistant>";
    expect(exit).toEqual(Exit.succeed({ text: `saw ${prompt.length} chars`, finishReason: "stop" }));
    expect(fake.calls[0]).toEqual({ prompt, options: { temperature: 0, topK: 1, maxTokens: 64 } });
    expect(fake.openSequences()).toBe(0); // the sequence's slot was freed
  });

  it("cuts the stop string like an OpenAI server, passes stop and maxTokens, and maps length", async () => {
    const fake = fakePolicy({
      reply: () => ({ text: "<answer>42</answer>", finishReason: "stop", stopString: "</answer>" }),
    });
    const exit = await run(fake, {
      messages: [{ role: "user", content: "q" }],
      stop: ["</answer>"],
      maxTokens: 9,
    });
    expect(exit).toEqual(Exit.succeed({ text: "<answer>42", finishReason: "stop" }));
    expect(fake.calls[0]?.options).toEqual({ temperature: 0, topK: 1, maxTokens: 9, stop: ["</answer>"] });

    const long = fakePolicy({ reply: () => ({ text: "abc", finishReason: "length" }) });
    expect(await run(long, { messages: [] })).toEqual(Exit.succeed({ text: "abc", finishReason: "length" }));
    const ctx = fakePolicy({ reply: () => ({ text: "ab", finishReason: "context" }) });
    expect(await run(ctx, { messages: [] })).toEqual(Exit.succeed({ text: "ab", finishReason: "length" }));
  });

  it("turns a policy failure into a typed executor error", async () => {
    const fake = fakePolicy({ reply: () => ({ text: "", finishReason: "eos" }), fail: true });
    const exit = await run(fake, { messages: [{ role: "user", content: "q" }] });
    expect(Exit.isFailure(exit)).toBe(true);
    const reason = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined;
    const error = reason !== undefined && "error" in reason ? reason.error : undefined;
    expect(error).toBeInstanceOf(ExecutorHttpError);
    expect((error as ExecutorHttpError).message).toContain("PolicyError: decode failed");
    expect((error as ExecutorHttpError).url).toBe("local:/models/fake.gguf");
    expect(fake.openSequences()).toBe(0);
  });
});
