/**
 * The learner against llama.cpp on a real pretrained model: SmolLM2-135M-Instruct (llama
 * architecture, tied output embedding, Q8_0 embedding + Q4_1 matrices), fetched by
 * tools/fetch-models.sh. The text is real chat rendered by the model's own template. Checked:
 * - full fine-tuning: the learner's F32 export (the Q4_1 file dequantized at load) scores like
 *   llama.cpp on that export, before and after a real update (max |Δ logp| ≤ 1e-3);
 * - the quantized base in llama.cpp against the learner's dequantized copy: the rounding of
 *   quantized products, measured and bounded (the size of what the trainer's mismatch metric
 *   reports in a LoRA run over this file);
 * - LoRA over the Q4_1 base: the policy running base + the learner's adapter agrees with the
 *   learner within the quantization gap, and reproduces the adapter's effect closely.
 */
import { join } from "node:path";
import type { ChatMessage } from "@workflow-r1/core";
import { readGguf, realModelPath } from "@workflow-r1/gguf";
import { createLlamaCppPolicy } from "@workflow-r1/policy";
import { Effect } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGgmlLearner, type GgmlLearnerShape } from "../src/index.js";
import { tempDir } from "./helpers.js";

const tmp = tempDir();
afterAll(() => tmp.cleanup());

type Policy = Awaited<ReturnType<typeof createLlamaCppPolicy>>;

const SYSTEM =
  "You answer questions in several steps. Think inside <think></think>, call a helper with " +
  "<tool>Operator: input</tool> when you want a second opinion, and give the final answer inside " +
  "<answer></answer>.";

// Conversations in the Workflow-R1 protocol, written for this test.
const CONVERSATIONS: ReadonlyArray<ReadonlyArray<ChatMessage>> = [
  [
    { role: "system", content: SYSTEM },
    { role: "user", content: "Which river flows through the city where the Eiffel Tower stands?" },
    {
      role: "assistant",
      content:
        "<think>The Eiffel Tower is in Paris. I should check which river runs through Paris before I " +
        "answer, because a wrong guess costs the whole reward.</think><tool>AnswerGenerate: Which river " +
        "flows through Paris?</tool>",
    },
    {
      role: "user",
      content: "<info>The Seine flows through Paris, dividing it into the Left and Right Banks.</info>",
    },
    {
      role: "assistant",
      content: "<think>The helper confirms it is the Seine.</think><answer>the Seine</answer>",
    },
  ],
  [
    { role: "system", content: SYSTEM },
    { role: "user", content: "How many legs do three spiders and two beetles have together?" },
    {
      role: "assistant",
      content:
        "<think>A spider has eight legs and a beetle, like every insect, has six. Three spiders have " +
        "twenty-four legs, two beetles twelve, so the total is thirty-six. Let me ask for a review of " +
        "this arithmetic.</think><tool>Review: 3 spiders × 8 legs + 2 beetles × 6 legs = 36</tool>",
    },
    { role: "user", content: "<info>The reasoning is correct: 24 + 12 = 36.</info>" },
    { role: "assistant", content: "<think>Confirmed.</think><answer>36</answer>" },
  ],
  [
    { role: "system", content: SYSTEM },
    {
      role: "user",
      content:
        "Who wrote the novel that begins with the line 'Call me Ishmael', and in which decade was it published?",
    },
    {
      role: "assistant",
      content:
        "<think>That opening line belongs to Moby-Dick, written by Herman Melville and first published in " +
        "1851, which is in the 1850s. Several candidate answers could help me be sure of the " +
        "decade.</think><tool>MultiAnswerGenerate: In which year was Moby-Dick first published?</tool>",
    },
    { role: "user", content: "<info>1. 1851 2. 1851 3. 1850</info>" },
    {
      role: "assistant",
      content: "<think>Most say 1851.</think><answer>Herman Melville, the 1850s</answer>",
    },
  ],
];

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>, from = 0) => {
  let m = 0;
  for (let i = from; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

/** Every position after the first (entry t: log p(tokens[t] | tokens[<t])). */
const allButFirst = (tokens: Int32Array) => ({
  tokens,
  mask: Uint8Array.from(tokens, (_, t) => (t === 0 ? 0 : 1)),
});

/** llama.cpp's teacher-forced logprobs laid out like the learner's (NaN at position 0). */
const policyScores = async (policy: Policy, sequences: ReadonlyArray<Int32Array>) => {
  const out: Float32Array[] = [];
  for (const tokens of sequences) {
    const scored = await Effect.runPromise(policy.score(tokens, 1));
    const row = new Float32Array(tokens.length).fill(Number.NaN);
    row.set(scored, 1);
    out.push(row);
  }
  return out;
};

const learnerScores = (learner: GgmlLearnerShape, sequences: ReadonlyArray<Int32Array>) =>
  Effect.runPromise(learner.logprobs(sequences.map(allButFirst)));

const worst = (a: ReadonlyArray<Float32Array>, b: ReadonlyArray<Float32Array>) =>
  Math.max(...a.map((row, i) => maxAbs(row, b[i]!, 1)));

const meanAbs = (a: ReadonlyArray<Float32Array>, b: ReadonlyArray<Float32Array>) => {
  let s = 0;
  let n = 0;
  a.forEach((row, i) => {
    for (let t = 1; t < row.length; t++) {
      s += Math.abs(row[t]! - b[i]![t]!);
      n++;
    }
  });
  return s / n;
};

/** A real update: a few maximum-likelihood steps on the conversations' assistant text. */
const update = async (learner: GgmlLearnerShape, sequences: ReadonlyArray<Int32Array>, steps: number) => {
  const batch = sequences.map(allButFirst);
  const count = batch.reduce((n, s) => n + s.tokens.length - 1, 0);
  const coefficients = batch.map((s) => Float32Array.from(s.mask, (m) => (m === 1 ? -1 / count : 0)));
  for (let i = 0; i < steps; i++) {
    await Effect.runPromise(learner.backward(batch, coefficients));
    await Effect.runPromise(learner.step());
  }
};

const openPolicy = (modelPath: string) =>
  createLlamaCppPolicy({
    modelPath,
    gpu: false,
    contextSize: 512,
    sequences: 1,
    threads: 2,
    kvCacheType: "F32",
  });

let base = "";
let sequences: Int32Array[] = [];

beforeAll(async () => {
  base = realModelPath("smollm2");
  // The model's own chat template renders the conversations (from the Q4_1 file: same vocabulary).
  const policy = await openPolicy(base);
  try {
    sequences = CONVERSATIONS.map((c) => policy.renderChat(c));
  } finally {
    await policy.dispose();
  }
}, 120_000);

describe("SmolLM2-135M-Instruct (real model, tied output embedding) against llama.cpp", () => {
  it("the conversations are real chat text of at least 128 tokens each, in ChatML", async () => {
    expect(sequences).toHaveLength(3);
    for (const s of sequences) expect(s.length).toBeGreaterThanOrEqual(128);
    const policy = await openPolicy(base);
    try {
      const text = policy.detokenize(sequences[0]!);
      expect(text.startsWith("<|im_start|>system\n")).toBe(true);
      expect(text).toContain("<|im_start|>assistant\n<think>The Eiffel Tower");
    } finally {
      await policy.dispose();
    }
  });

  it("full fine-tuning: the learner's F32 export agrees with llama.cpp within 1e-3, before and after a real update; the quantized base differs by its rounding", async () => {
    const learner = createGgmlLearner({
      modelPath: base,
      threads: 2,
      optimizer: { learningRate: 1e-5 },
      microBatchTokens: 1024,
    });
    const quantized = await openPolicy(base);
    try {
      const fromLearner = await learnerScores(learner, sequences);
      // llama.cpp on the Q4_1 file computes its products on quantized activations; the learner
      // holds the same weights dequantized. That gap is present, but far below a different
      // model's. (A full fine-tuning run samples from the F32 export from its first step on; a
      // LoRA run keeps the quantized base on both sides and reports a gap of this size.)
      const fromQuantized = await policyScores(quantized, sequences);
      const gap = worst(fromLearner, fromQuantized);
      const gapMean = meanAbs(fromLearner, fromQuantized);
      console.log(
        `SmolLM2 Q4_1 in llama.cpp vs the learner's F32 copy: max |Δ logp| ${gap.toExponential(2)}, mean ${gapMean.toExponential(2)}`,
      );
      expect(gap).toBeGreaterThan(1e-3);
      expect(gapMean).toBeLessThan(0.1);

      const exported = join(tmp.dir, "smollm2-f32.gguf");
      await Effect.runPromise(learner.save(exported, { format: "gguf" }));
      const header = await readGguf(exported, { tensorData: false });
      expect(header.tensors.every((t) => t.type === 0)).toBe(true);
      expect(header.tensors.some((t) => t.name === "output.weight")).toBe(false); // still tied
      const f32 = await openPolicy(exported);
      try {
        const before = worst(fromLearner, await policyScores(f32, sequences));
        console.log(`SmolLM2 F32 export: learner vs llama.cpp max |Δ logp| ${before.toExponential(2)}`);
        expect(before).toBeLessThan(1e-3);

        await update(learner, sequences, 2);
        const trained = await learnerScores(learner, sequences);
        // The update moved the model (the tied embedding is trained through both of its uses).
        expect(worst(trained, fromLearner)).toBeGreaterThan(1e-2);
        const saved = join(tmp.dir, "smollm2-step2.gguf");
        await Effect.runPromise(learner.save(saved, { format: "gguf" }));
        await Effect.runPromise(f32.reload({ kind: "gguf", path: saved }));
        const after = worst(trained, await policyScores(f32, sequences));
        console.log(`SmolLM2 after 2 steps: learner vs llama.cpp max |Δ logp| ${after.toExponential(2)}`);
        expect(after).toBeLessThan(1e-3);
      } finally {
        await f32.dispose();
      }
    } finally {
      await quantized.dispose();
      await learner.dispose();
    }
  }, 600_000);

  it("LoRA over the Q4_1 base: llama.cpp running base + the learner's adapter moves the logprobs as the learner does", async () => {
    const learner = createGgmlLearner({
      modelPath: base,
      threads: 2,
      lora: { rank: 8, alpha: 16 },
      optimizer: { learningRate: 2e-3 },
      microBatchTokens: 1024,
    });
    const policy = await openPolicy(base);
    try {
      const start = await learnerScores(learner, sequences);
      const policyBase = await policyScores(policy, sequences);
      await update(learner, sequences, 3);
      const trained = await learnerScores(learner, sequences);
      const bytes = await Effect.runPromise(learner.exportAdapter());
      await Effect.runPromise(policy.reload({ kind: "lora-bytes", bytes }));
      const policyAdapted = await policyScores(policy, sequences);
      // How far the adapter moved each log-probability, in the learner and in llama.cpp.
      const moved = (a: ReadonlyArray<Float32Array>, b: ReadonlyArray<Float32Array>) =>
        a.map((row, i) => row.map((v, t) => v - b[i]![t]!));
      const learnerMove = moved(trained, start);
      const policyMove = moved(policyAdapted, policyBase);
      const zero = learnerMove.map((row) => new Float32Array(row.length));
      const baseGap = meanAbs(start, policyBase);
      const adaptedGap = meanAbs(trained, policyAdapted);
      const moveSize = meanAbs(learnerMove, zero);
      const moveGap = meanAbs(learnerMove, policyMove);
      console.log(
        `SmolLM2 LoRA over Q4_1, mean |Δ logp| learner vs llama.cpp: base ${baseGap.toExponential(2)} ` +
          `(max ${worst(start, policyBase).toExponential(2)}), base + adapter ${adaptedGap.toExponential(2)} ` +
          `(max ${worst(trained, policyAdapted).toExponential(2)}); the adapter moved logp by ${moveSize.toExponential(2)} ` +
          `in the learner, llama.cpp's move differs by ${moveGap.toExponential(2)}`,
      );
      // On quantized weights the two sides are not bit-equal: llama.cpp and the learner both
      // quantize activations for Q4_1 / Q8_0 products, and tiny upstream differences flip those
      // roundings. Measured 2026-12-07 on this file: ~0.07 mean / ~0.45 max |Δ logp| — the same
      // size as llama.cpp's own gap between this Q4_1 file and its dequantized F32 copy (0.066 mean,
      // 0.51 max, the full-fine-tuning case above) — while on F32 weights they agree to 1e-5.
      // So: no worse than that quantization gap with a margin, and, the part the adapter owns,
      // llama.cpp reproduces the adapter's effect: its move matches the learner's to a small
      // fraction of the move itself (both sides' quantization noise cancels in the difference).
      expect(baseGap).toBeLessThan(0.1);
      expect(adaptedGap).toBeLessThan(0.1);
      expect(moveSize).toBeGreaterThan(0.05);
      expect(moveGap).toBeLessThan(0.25 * moveSize);
    } finally {
      await policy.dispose();
      await learner.dispose();
    }
  }, 600_000);
});
