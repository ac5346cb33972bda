import { readGguf, referenceLogprobs } from "@workflow-r1/policy";
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
});
