import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ContextOverflowError,
  type Generation,
  ModelLoadError,
  Policy,
  PolicyError,
} from "@workflow-r1/core";
import {
  createLoraAdapter,
  createTinyLlama,
  mergeLora,
  readGguf,
  referenceLogprobs,
  type TinyModelInfo,
} from "@workflow-r1/gguf";
import { Effect, Exit } from "effect";
import { getLlama, type Llama } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLlamaCppPolicy, LlamaCppPolicy, type LlamaCppPolicyConfig } from "../src/index.js";

let dir: string;
let llama: Llama;
let base: TinyModelInfo;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "wr1-policy-"));
  llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });
  base = await createTinyLlama({
    path: join(dir, "base.gguf"),
    vocab: 300,
    dim: 64,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    ffn: 128,
    seed: 11,
  });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

// Every case runs on both engines: the native decode loop (the default) and node-llama-cpp's.
let engine: "native" | "node-llama-cpp" = "native";

const config = (over: Partial<LlamaCppPolicyConfig> = {}): LlamaCppPolicyConfig => ({
  engine,
  modelPath: base.path,
  llama,
  gpu: false,
  contextSize: 256,
  sequences: 4,
  threads: 2,
  kvCacheType: "F32",
  ...over,
});

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

const withPolicy = <A>(
  cfg: LlamaCppPolicyConfig,
  f: (p: Awaited<ReturnType<typeof createLlamaCppPolicy>>) => Promise<A>,
) =>
  createLlamaCppPolicy(cfg).then(async (p) => {
    try {
      return await f(p);
    } finally {
      await p.dispose();
    }
  });

const sample = (
  p: Awaited<ReturnType<typeof createLlamaCppPolicy>>,
  prompt: Int32Array,
  turns: ReadonlyArray<{
    append: Int32Array;
    options: Parameters<Awaited<ReturnType<typeof createLlamaCppPolicy>>["score"]>[0] extends never
      ? never
      : import("@workflow-r1/core").SamplingOptions;
  }>,
) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const seq = yield* p.openSequence(prompt);
        const out: Generation[] = [];
        for (const t of turns) out.push(yield* seq.generate(t.append, t.options));
        return { out, tokens: seq.tokens() };
      }),
    ),
  );

describe.each(["native", "node-llama-cpp"] as const)(
  "LlamaCppPolicy on a tiny model (CPU, %s engine)",
  (which) => {
    beforeAll(() => {
      engine = which;
    });

    it("runs on the engine asked for; the native one is the default on CPU", async () => {
      await withPolicy(config(), async (p) => expect(p.engine).toBe(which));
      await withPolicy({ ...config(), engine: undefined }, async (p) => expect(p.engine).toBe("native"));
    });

    it("scores tokens like the reference forward (F32 KV cache, |Δ| ≤ 1e-3)", async () => {
      await withPolicy(config(), async (p) => {
        const tokens = p.tokenize("<tool> search: who wrote Hamlet </tool> The answer is Shakespeare.");
        const got = await Effect.runPromise(p.score(tokens, 3));
        const want = referenceLogprobs(base.file, tokens, 3);
        expect(got.length).toBe(tokens.length - 3);
        expect(maxDiff(got, want)).toBeLessThan(1e-3);
        // A wrong token sequence scores differently: the check can fail.
        const shifted = Int32Array.from(tokens, (t) => (t + 1) % 256);
        expect(maxDiff(await Effect.runPromise(p.score(shifted, 3)), want)).toBeGreaterThan(1e-2);
      });
    });

    it("matches the reference forward for qwen2 (NEOX RoPE, q/k/v biases) too", async () => {
      const qwen = await createTinyLlama({
        path: join(dir, "qwen.gguf"),
        architecture: "qwen2",
        vocab: 300,
        seed: 4,
      });
      await withPolicy(config({ modelPath: qwen.path }), async (p) => {
        const tokens = p.tokenize("<answer> William Shakespeare </answer> and more text");
        const got = await Effect.runPromise(p.score(tokens, 1));
        expect(maxDiff(got, referenceLogprobs(qwen.file, tokens, 1))).toBeLessThan(1e-3);
      });
    });

    it("renders with the chat template embedded in the GGUF", async () => {
      const template =
        "{% for m in messages %}[{{ m.role }}] {{ m.content }}<|im_end|>{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}";
      const custom = await createTinyLlama({
        path: join(dir, "custom.gguf"),
        vocab: 300,
        seed: 5,
        tokenizer: { chatTemplate: template },
      });
      await withPolicy(config({ modelPath: custom.path }), async (p) => {
        const messages = [{ role: "user" as const, content: "hi" }];
        const prompt = p.renderChat(messages, { addGenerationPrompt: true });
        expect(p.detokenize(prompt)).toBe("[user] hi<|im_end|>[assistant] ");
        const sampled = p.tokenize("ok");
        const cont = p.renderContinuation([{ role: "tool", content: "x" }], sampled);
        const whole = p.renderChat(
          [...messages, { role: "assistant", content: "ok" }, { role: "tool", content: "x" }],
          {
            addGenerationPrompt: true,
          },
        );
        expect(Array.from(whole)).toEqual([...prompt, ...sampled, ...cont]);
      });
    });

    it("returns temperature-1 log-probs of sampled tokens, also when sampling at another temperature with top-k/top-p", async () => {
      await withPolicy(config(), async (p) => {
        const prompt = p.tokenize("Question: what is the capital of France?");
        for (const options of [
          { maxTokens: 24, seed: 5 },
          { maxTokens: 24, seed: 5, temperature: 0.7, topK: 40, topP: 0.9 },
        ]) {
          const { out } = await sample(p, prompt, [{ append: new Int32Array(0), options }]);
          const g = out[0];
          expect(g.tokens.length).toBeGreaterThan(0);
          const all = Int32Array.from([...prompt, ...g.tokens]);
          const want = referenceLogprobs(base.file, all, prompt.length);
          expect(maxDiff(g.logprobs, want)).toBeLessThan(1e-3);
        }
      });
    });

    it("samples deterministically for a seed and stops on stop strings, keeping the stop string's tokens", async () => {
      await withPolicy(config(), async (p) => {
        const prompt = p.tokenize("The agent reads the question");
        // A seed for which the model writes 40 tokens without emitting its end-of-turn token.
        let seed = 9;
        let free = (
          await sample(p, prompt, [{ append: new Int32Array(0), options: { maxTokens: 40, seed } }])
        ).out[0];
        while (free.finishReason !== "length") {
          seed++;
          free = (await sample(p, prompt, [{ append: new Int32Array(0), options: { maxTokens: 40, seed } }]))
            .out[0];
        }
        const again = (
          await sample(p, prompt, [{ append: new Int32Array(0), options: { maxTokens: 40, seed } }])
        ).out[0];
        expect(Array.from(again.tokens)).toEqual(Array.from(free.tokens));
        expect(free.finishReason).toBe("length");
        // Use a piece of what the model writes for this seed as the stop string: whole characters (the
        // random model also writes stray bytes, which decode to U+FFFD and match no text).
        const text = p.detokenize(free.tokens);
        let at = 12;
        while (/\uFFFD/.test(text.slice(at, at + 3))) at++;
        const stop = text.slice(at, at + 3);
        expect(stop.length).toBe(3);
        const firstEnd = text.indexOf(stop) + stop.length;
        const stopped = (
          await sample(p, prompt, [
            { append: new Int32Array(0), options: { maxTokens: 40, seed, stop: ["\u0007never", stop] } },
          ])
        ).out[0];
        expect(stopped.finishReason).toBe("stop");
        expect(stopped.stopString).toBe(stop);
        expect(Array.from(stopped.tokens)).toEqual(
          Array.from(free.tokens.subarray(0, stopped.tokens.length)),
        );
        const stoppedText = p.detokenize(stopped.tokens);
        expect(stoppedText.endsWith(stop) || stoppedText.length >= firstEnd).toBe(true);
        expect(p.detokenize(stopped.tokens.subarray(0, -1)).includes(stop)).toBe(false);
      });
    });

    it("decodes concurrent sequences together with the same results as one at a time", async () => {
      await withPolicy(config(), async (p) => {
        const prompts = ["alpha", "the question", "Paris is", "<answer>"].map((s) => p.tokenize(s));
        const opts = (i: number) => ({ maxTokens: 16, seed: 100 + i });
        const sequential: Generation[] = [];
        for (const [i, pr] of prompts.entries())
          sequential.push((await sample(p, pr, [{ append: new Int32Array(0), options: opts(i) }])).out[0]);
        const decodesBefore = p.decodeCalls();
        const concurrent = await Effect.runPromise(
          Effect.all(
            prompts.map((pr, i) =>
              Effect.scoped(
                Effect.flatMap(p.openSequence(pr), (s) => s.generate(new Int32Array(0), opts(i))),
              ),
            ),
            { concurrency: "unbounded" },
          ),
        );
        // Continuous batching: one llama_decode per step for all live sequences (prompts included).
        const steps = Math.max(...concurrent.map((g) => g.tokens.length));
        expect(p.decodeCalls() - decodesBefore).toBeLessThanOrEqual(steps + 1);
        for (const [i, g] of concurrent.entries()) {
          expect(Array.from(g.tokens)).toEqual(Array.from(sequential[i].tokens));
          expect(maxDiff(g.logprobs, sequential[i].logprobs)).toBeLessThan(1e-3);
        }
      });
    });

    it("appends observation tokens and continues from the cached state without re-evaluating the prefix", async () => {
      await withPolicy(config(), async (p) => {
        const prompt = p.tokenize("<tool> search: Eiffel Tower </tool>");
        const obs = p.tokenize(" Paris, France.");
        let evaluatedBefore = 0;
        const result = await Effect.runPromise(
          Effect.scoped(
            Effect.gen(function* () {
              const seq = yield* p.openSequence(prompt);
              const g1 = yield* seq.generate(new Int32Array(0), { maxTokens: 6, seed: 1 });
              evaluatedBefore = p.evaluatedTokens();
              const g2 = yield* seq.generate(obs, { maxTokens: 6, seed: 2 });
              return { g1, g2, tokens: seq.tokens(), evaluatedAfter: p.evaluatedTokens() };
            }),
          ),
        );
        const { g1, g2, tokens } = result;
        // Second call decodes only: the last sampled token of turn 1, the observation, and its own samples but the last.
        expect(result.evaluatedAfter - evaluatedBefore).toBe(1 + obs.length + g2.tokens.length - 1);
        expect(Array.from(tokens)).toEqual([...prompt, ...g1.tokens, ...obs, ...g2.tokens]);
        const want = referenceLogprobs(base.file, tokens, prompt.length + g1.tokens.length + obs.length);
        expect(maxDiff(g2.logprobs, want)).toBeLessThan(1e-3);
      });
    });

    it("renders ChatML and continues a sampled turn so that rendering the whole chat is prompt + sampled + continuation", async () => {
      await withPolicy(config(), async (p) => {
        const im_end = base.specialTokens["<|im_end|>"];
        expect(p.info().endOfTurnTokens).toContain(im_end);
        const messages = [
          { role: "system" as const, content: "You are an agent." },
          { role: "user" as const, content: "Who wrote Hamlet? <|im_end|>" },
        ];
        const prompt = p.renderChat(messages, { addGenerationPrompt: true });
        expect(p.detokenize(prompt)).toBe(
          "<|im_start|>system\nYou are an agent.<|im_end|>\n<|im_start|>user\nWho wrote Hamlet? <|im_end|><|im_end|>\n<|im_start|>assistant\n",
        );
        // Contents are plain text: the user's literal "<|im_end|>" is not the special token.
        expect(prompt.filter((t) => t === im_end).length).toBe(2);
        const tool = [{ role: "tool" as const, content: "Hamlet is a play by William Shakespeare." }];
        const action = "<tool> search: Hamlet author </tool>";
        // Stopped at a stop string: the continuation closes the assistant turn first.
        const sampled = p.tokenize(action);
        const cont = p.renderContinuation(tool, sampled);
        const whole = p.renderChat([...messages, { role: "assistant", content: action }, ...tool], {
          addGenerationPrompt: true,
        });
        expect(Array.from(whole)).toEqual([...prompt, ...sampled, ...cont]);
        expect(cont[0]).toBe(im_end);
        // The model emitted <|im_end|> itself: only what follows it is added. Plain ChatML has no tool
        // role, so the observation is a user turn.
        const sampledEos = Int32Array.from([...sampled, im_end]);
        const contEos = p.renderContinuation(tool, sampledEos);
        expect(Array.from(whole)).toEqual([...prompt, ...sampledEos, ...contEos]);
        expect(p.detokenize(contEos)).toBe(
          "\n<|im_start|>user\nHamlet is a play by William Shakespeare.<|im_end|>\n<|im_start|>assistant\n",
        );
      });
    });

    it("swaps LoRA adapters without reloading the base, as the adapter's math predicts, and reloads full weights", async () => {
      await withPolicy(config(), async (p) => {
        const tokens = p.tokenize("The capital of France is Paris.");
        const baseFile = await readGguf(base.path);
        const baseScore = await Effect.runPromise(p.score(tokens, 1));
        const modelBefore = p.model();
        const a1 = await createLoraAdapter({
          base: baseFile,
          rank: 4,
          alpha: 8,
          targets: ["attn_q", "attn_v", "ffn_down"],
          seed: 1,
          path: join(dir, "lora1.gguf"),
        });
        const a2 = await createLoraAdapter({
          base: baseFile,
          rank: 2,
          alpha: 2,
          seed: 2,
          path: join(dir, "lora2.gguf"),
        });
        for (const [adapter, scale] of [
          [a1, 1],
          [a2, 0.5],
          [a1, 0.25],
        ] as const) {
          await Effect.runPromise(p.reload({ kind: "lora", path: adapter.path, scale }));
          expect(p.model()).toBe(modelBefore);
          const got = await Effect.runPromise(p.score(tokens, 1));
          const want = referenceLogprobs(mergeLora(baseFile, await readGguf(adapter.path), scale), tokens, 1);
          expect(maxDiff(got, want)).toBeLessThan(1e-3);
          expect(maxDiff(got, baseScore)).toBeGreaterThan(1e-3);
        }
        // The same adapter from memory (no file): the native engine reads the bytes through a
        // memory stream, node-llama-cpp's engine writes them out first; both as the file does.
        const bytes = new Uint8Array(readFileSync(a2.path));
        await Effect.runPromise(p.reload({ kind: "lora-bytes", bytes, scale: 0.5 }));
        expect(p.model()).toBe(modelBefore);
        const fromBytes = await Effect.runPromise(p.score(tokens, 1));
        const wantBytes = referenceLogprobs(mergeLora(baseFile, await readGguf(a2.path), 0.5), tokens, 1);
        expect(maxDiff(fromBytes, wantBytes)).toBeLessThan(1e-3);
        // Bytes that are not a whole adapter: a typed error naming them, the loaded adapter kept.
        const corrupt = await Effect.runPromise(
          Effect.flip(
            p.reload({ kind: "lora-bytes", bytes: bytes.subarray(0, 100), label: "truncated adapter" }),
          ),
        );
        expect(corrupt).toBeInstanceOf(ModelLoadError);
        expect(corrupt.message).toContain("truncated adapter (100 bytes)");
        expect(maxDiff(await Effect.runPromise(p.score(tokens, 1)), fromBytes)).toBe(0);
        // Rewriting the same adapter path (as a learner does) is picked up on reload.
        await createLoraAdapter({
          base: baseFile,
          rank: 4,
          alpha: 8,
          targets: ["attn_q"],
          seed: 3,
          path: a1.path,
        });
        await Effect.runPromise(p.reload({ kind: "lora", path: a1.path }));
        const want3 = referenceLogprobs(mergeLora(baseFile, await readGguf(a1.path)), tokens, 1);
        expect(maxDiff(await Effect.runPromise(p.score(tokens, 1)), want3)).toBeLessThan(1e-3);

        const next = await createTinyLlama({ path: join(dir, "next.gguf"), vocab: 300, seed: 12 });
        await Effect.runPromise(p.reload({ kind: "gguf", path: next.path }));
        expect(
          maxDiff(await Effect.runPromise(p.score(tokens, 1)), referenceLogprobs(next.file, tokens, 1)),
        ).toBeLessThan(1e-3);
        expect(p.info().modelPath).toBe(next.path);
      });
    });

    it("gives typed errors: bad path, corrupt GGUF, context overflow, reload with open sequences", async () => {
      const missing = await Effect.runPromiseExit(
        Effect.scoped(
          Effect.flatMap(Policy, (p) => Effect.succeed(p.info())).pipe(
            Effect.provide(LlamaCppPolicy.layer(config({ modelPath: join(dir, "nope.gguf") }))),
          ),
        ),
      );
      expect(Exit.isFailure(missing)).toBe(true);
      const err = Exit.isFailure(missing) ? (missing.cause as unknown as { reasons?: unknown[] }) : undefined;
      expect(JSON.stringify(missing)).toContain("ModelLoadError");
      expect(JSON.stringify(missing)).toContain("nope.gguf");
      void err;
      const corrupt = join(dir, "corrupt.gguf");
      await writeFile(corrupt, Buffer.concat([Buffer.from("GGUF"), Buffer.alloc(64, 7)]));
      await expect(createLlamaCppPolicy(config({ modelPath: corrupt }))).rejects.toBeInstanceOf(
        ModelLoadError,
      );
      await expect(createLlamaCppPolicy(config({ modelPath: corrupt }))).rejects.toThrow(/corrupt\.gguf/);

      await withPolicy(config({ contextSize: 64, sequences: 1 }), async (p) => {
        const ctx = p.info().contextSize;
        const tooLong = new Int32Array(ctx + 1).fill(65);
        const open = await Effect.runPromiseExit(Effect.scoped(p.openSequence(tooLong)));
        expect(JSON.stringify(open)).toContain("ContextOverflowError");
        const run = await Effect.runPromise(
          Effect.scoped(
            Effect.gen(function* () {
              const seq = yield* p.openSequence(new Int32Array(ctx - 5).fill(66));
              const g = yield* seq.generate(new Int32Array(0), { maxTokens: 50, seed: 1 });
              const total = seq.tokens().length;
              const over = yield* Effect.flip(seq.generate(new Int32Array(10).fill(67), { maxTokens: 5 }));
              const reload = yield* Effect.flip(p.reload({ kind: "gguf", path: base.path }));
              return { g, over, reload, total };
            }),
          ),
        );
        expect(run.g.finishReason === "context" || run.g.finishReason === "eos").toBe(true);
        // The whole sequence, the last sampled token included, fits the context (never ctx + 1).
        if (run.g.finishReason === "context") expect(run.g.tokens.length).toBe(5);
        expect(run.total).toBeLessThanOrEqual(ctx);
        expect(run.over).toBeInstanceOf(ContextOverflowError);
        expect(run.over.message).toMatch(/context holds \d+ per sequence/);
        expect(run.reload).toBeInstanceOf(ModelLoadError);
        expect(run.reload.message).toMatch(/still open/);
        const bad = await Effect.runPromise(
          Effect.flip(Effect.scoped(p.openSequence(Int32Array.from([1, 99999])))),
        );
        expect(bad).toBeInstanceOf(PolicyError);
      });
    });
  },
);

describe("node-llama-cpp engine's adapter copies", () => {
  it("keeps one copy on disk across LoRA reloads (files and bytes), none after a full reload", async () => {
    const adapter = await createLoraAdapter({
      base: await readGguf(base.path),
      rank: 2,
      alpha: 4,
      seed: 5,
      path: join(dir, "copies.gguf"),
    });
    // The engine copies adapters under os.tmpdir(): point it at a directory of this test's own.
    const scratch = await mkdtemp(join(tmpdir(), "wr1-copies-"));
    const copies = () =>
      readdirSync(scratch)
        .filter((d) => d.startsWith("wr1-lora-"))
        .flatMap((d) => readdirSync(join(scratch, d)));
    const savedTmp = process.env["TMPDIR"];
    process.env["TMPDIR"] = scratch;
    try {
      await withPolicy({ ...config(), engine: "node-llama-cpp" }, async (p) => {
        const bytes = new Uint8Array(readFileSync(adapter.path));
        for (const weights of [
          { kind: "lora", path: adapter.path },
          { kind: "lora-bytes", bytes },
          { kind: "lora", path: adapter.path, scale: 0.5 },
          { kind: "lora-bytes", bytes, scale: 0.25 },
        ] as const) {
          await Effect.runPromise(p.reload(weights));
          expect(copies()).toHaveLength(1);
        }
        await Effect.runPromise(p.reload({ kind: "gguf", path: base.path }));
        expect(copies()).toHaveLength(0);
      });
    } finally {
      if (savedTmp === undefined) delete process.env["TMPDIR"];
      else process.env["TMPDIR"] = savedTmp;
      await rm(scratch, { recursive: true, force: true });
    }
  });
});
