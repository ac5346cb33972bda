import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createLlamaCppPolicy } from "@workflow-r1/policy";
import { Effect } from "effect";
import { afterAll, describe, expect, it } from "vitest";
import { createGgmlLearner, type GgmlLearnerShape } from "../src/index.js";
import { randomSequences, tempDir, tinyModel } from "./helpers.js";

const tmp = tempDir();
afterAll(() => tmp.cleanup());

type Policy = Awaited<ReturnType<typeof createLlamaCppPolicy>>;

/** Sample a continuation with llama.cpp (temperature 1, no truncation), then compare logprobs. */
const sampleAndCompare = async (
  policy: Policy,
  learner: GgmlLearnerShape,
  prompt: Int32Array,
  seed: number,
) => {
  const generation = await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const seq = yield* policy.openSequence(prompt);
        return yield* seq.generate(new Int32Array(0), {
          maxTokens: 12,
          temperature: 1,
          topK: 0,
          topP: 1,
          seed,
        });
      }),
    ),
  );
  expect(generation.tokens.length).toBeGreaterThan(0);
  const tokens = Int32Array.from([...prompt, ...generation.tokens]);
  const mask = new Uint8Array(tokens.length);
  mask.fill(1, prompt.length);
  const [lp] = await Effect.runPromise(learner.logprobs([{ tokens, mask }]));
  let maxDiff = 0;
  generation.tokens.forEach((_, i) => {
    maxDiff = Math.max(maxDiff, Math.abs(lp[prompt.length + i] - generation.logprobs[i]));
  });
  // Teacher-forced scores of the whole sequence too.
  const scored = await Effect.runPromise(policy.score(tokens, 1));
  const [all] = await Effect.runPromise(
    learner.logprobs([{ tokens, mask: Uint8Array.from(tokens, (_, t) => (t === 0 ? 0 : 1)) }]),
  );
  for (let t = 1; t < tokens.length; t++) maxDiff = Math.max(maxDiff, Math.abs(all[t] - scored[t - 1]));
  return { maxDiff, tokens, mask };
};

const openPolicy = (modelPath: string, lora?: string) =>
  createLlamaCppPolicy({
    modelPath,
    gpu: false,
    contextSize: 64,
    sequences: 1,
    threads: 1,
    kvCacheType: "F32",
    ...(lora ? { lora: { path: lora } } : {}),
  });

/** A few AdamW steps that visibly change the weights (maximum likelihood on random sequences). */
const train = async (learner: GgmlLearnerShape, vocab: number) => {
  const batch = randomSequences(2, [10, 7], vocab, 99).map(({ tokens, mask }) => ({ tokens, mask }));
  const coef = batch.map((s) => Float32Array.from(s.tokens, () => -1));
  const before = await Effect.runPromise(learner.logprobs(batch));
  for (let i = 0; i < 3; i++) {
    await Effect.runPromise(learner.backward(batch, coef));
    const stats = await Effect.runPromise(learner.step());
    expect(stats.gradNorm).toBeGreaterThan(0);
  }
  const after = await Effect.runPromise(learner.logprobs(batch));
  expect(Math.abs(after[0][3] - before[0][3])).toBeGreaterThan(1e-3);
};

// Learner and llama.cpp run on one thread here: on a busy 2-core machine, thread barriers of tiny graphs
// cost more than the work (the bench measures 2 threads).
describe("agreement with llama.cpp (node-llama-cpp, F32 KV cache)", () => {
  for (const architecture of ["llama", "qwen2"] as const) {
    it(`${architecture}: full fine-tuning, before and after a step + save + reload`, async () => {
      const model = await tinyModel(tmp.dir, `agree-${architecture}`, { architecture, seed: 21 });
      const learner = createGgmlLearner({
        modelPath: model.path,
        threads: 1,
        optimizer: { learningRate: 1e-2 },
      });
      const policy = await openPolicy(model.path);
      try {
        const prompt = randomSequences(1, [6], 250, 4)[0].tokens;
        expect((await sampleAndCompare(policy, learner, prompt, 1)).maxDiff).toBeLessThan(1e-3);
        await train(learner, 250);
        const saved = join(tmp.dir, `trained-${architecture}.gguf`);
        await Effect.runPromise(learner.save(saved, { format: "gguf" }));
        await Effect.runPromise(policy.reload({ kind: "gguf", path: saved }));
        expect((await sampleAndCompare(policy, learner, prompt, 2)).maxDiff).toBeLessThan(1e-3);
        // The saved GGUF reopens in a fresh learner with the same logprobs.
        const reopened = createGgmlLearner({ modelPath: saved, threads: 1 });
        try {
          const seq = randomSequences(1, [12], 250, 8).map(({ tokens, mask }) => ({ tokens, mask }));
          const [a] = await Effect.runPromise(learner.logprobs(seq));
          const [b] = await Effect.runPromise(reopened.logprobs(seq));
          for (let t = 1; t < a.length; t++) expect(b[t]).toBeCloseTo(a[t], 6);
        } finally {
          await reopened.dispose();
        }
      } finally {
        await policy.dispose();
        await learner.dispose();
      }
    });
  }

  it("LoRA: adapter GGUF loads in llama.cpp and matches; merged GGUF matches too", async () => {
    const model = await tinyModel(tmp.dir, "agree-lora", { seed: 22 });
    const learner = createGgmlLearner({
      modelPath: model.path,
      threads: 1,
      lora: { rank: 4, alpha: 8 },
      optimizer: { learningRate: 5e-2 },
    });
    const policy = await openPolicy(model.path);
    try {
      const prompt = randomSequences(1, [5], 250, 6)[0].tokens;
      expect((await sampleAndCompare(policy, learner, prompt, 3)).maxDiff).toBeLessThan(1e-3);
      await train(learner, 250);
      const adapter = join(tmp.dir, "adapter.gguf");
      await Effect.runPromise(learner.save(adapter, { format: "lora" }));
      await Effect.runPromise(policy.reload({ kind: "lora", path: adapter }));
      expect((await sampleAndCompare(policy, learner, prompt, 4)).maxDiff).toBeLessThan(1e-3);
      // In memory: exportAdapter gives the file's bytes; after more training the policy takes the
      // new adapter straight from them.
      expect(
        Buffer.compare(Buffer.from(await Effect.runPromise(learner.exportAdapter())), readFileSync(adapter)),
      ).toBe(0);
      await train(learner, 250);
      const bytes = await Effect.runPromise(learner.exportAdapter());
      await Effect.runPromise(policy.reload({ kind: "lora-bytes", bytes }));
      expect((await sampleAndCompare(policy, learner, prompt, 7)).maxDiff).toBeLessThan(1e-3);
      const merged = join(tmp.dir, "merged.gguf");
      await Effect.runPromise(learner.save(merged, { format: "gguf" }));
      await Effect.runPromise(policy.reload({ kind: "gguf", path: merged }));
      expect((await sampleAndCompare(policy, learner, prompt, 5)).maxDiff).toBeLessThan(1e-3);
    } finally {
      await policy.dispose();
      await learner.dispose();
    }
  });
});
