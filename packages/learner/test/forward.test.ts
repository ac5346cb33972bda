import { join } from "node:path";
import { readGguf, referenceLogprobs, writeGguf } from "@workflow-r1/gguf";
import { Effect } from "effect";
import { afterAll, describe, expect, it } from "vitest";
import { createGgmlLearner } from "../src/index.js";
import { randomSequences, tempDir, tinyModel } from "./helpers.js";

const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe("forward logprobs against the plain-JS reference forward", () => {
  for (const architecture of ["llama", "qwen2"] as const) {
    it(`${architecture}: sequences of different lengths in one batch`, async () => {
      const model = await tinyModel(tmp.dir, `fwd-${architecture}`, { architecture, seed: 3 });
      const learner = createGgmlLearner({ modelPath: model.path, threads: 2 });
      try {
        const batch = randomSequences(3, [17, 5, 11], model.vocab, 7).map(({ tokens, mask }) => ({
          tokens,
          mask,
        }));
        const lps = await Effect.runPromise(learner.logprobs(batch));
        const file = await readGguf(model.path);
        let maxDiff = 0;
        batch.forEach((s, i) => {
          const ref = referenceLogprobs(file, s.tokens, 1);
          expect(Number.isNaN(lps[i][0])).toBe(true);
          for (let t = 1; t < s.tokens.length; t++)
            maxDiff = Math.max(maxDiff, Math.abs(lps[i][t] - ref[t - 1]));
        });
        expect(maxDiff).toBeLessThan(1e-4);
      } finally {
        await learner.dispose();
      }
    });
  }

  it("tied output (no output.weight): logits reuse token_embd, and its gradient has both paths", async () => {
    const model = await tinyModel(tmp.dir, "untied", { seed: 4, vocab: 280, dim: 16, ffn: 32 });
    const file = await readGguf(model.path);
    const tied = { ...file, tensors: file.tensors.filter((t) => t.name !== "output.weight") };
    const path = join(tmp.dir, "tied.gguf");
    await writeGguf(path, tied);
    const learner = createGgmlLearner({ modelPath: path, threads: 1 });
    try {
      expect(learner.parameterNames().some(([n]) => n === "output.weight")).toBe(false);
      const batch = randomSequences(2, [9, 4], 280, 2).map(({ tokens, mask }) => ({ tokens, mask }));
      const lps = await Effect.runPromise(learner.logprobs(batch));
      const reference = await readGguf(path);
      batch.forEach((s, i) => {
        const ref = referenceLogprobs(reference, s.tokens, 1);
        for (let t = 1; t < s.tokens.length; t++) expect(Math.abs(lps[i][t] - ref[t - 1])).toBeLessThan(1e-4);
      });
      // Central difference on an embedding row that is both an input token and a target.
      const coef = batch.map((s) => Float32Array.from(s.tokens, () => -1));
      await Effect.runPromise(learner.backward(batch, coef));
      const index = batch[0].tokens[3] * 16 + 5;
      const analytic = learner.gradient("token_embd.weight", index);
      const f = async () => {
        const l = await Effect.runPromise(learner.logprobs(batch));
        return -l.reduce((s, lp) => s + lp.slice(1).reduce((a, b) => a + b, 0), 0);
      };
      const w = learner.getParameter("token_embd.weight", index);
      learner.setParameter("token_embd.weight", index, w + 1e-2);
      const plus = await f();
      learner.setParameter("token_embd.weight", index, w - 1e-2);
      const minus = await f();
      learner.setParameter("token_embd.weight", index, w);
      const numeric = (plus - minus) / 2e-2;
      expect(Math.abs(analytic - numeric) / Math.max(Math.abs(numeric), 1e-2)).toBeLessThan(1e-2);
    } finally {
      await learner.dispose();
    }
  });
});
