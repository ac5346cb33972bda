import { Effect } from "effect";
import { afterAll, describe, expect, it } from "vitest";
import { createGgmlLearner } from "../src/index.js";
import { randomSequences, tempDir, tinyModel } from "./helpers.js";

const tmp = tempDir();
afterAll(() => tmp.cleanup());

/**
 * AdamW followed element by element in float64 over several steps: the learner must keep its
 * moments between steps (an earlier version zeroed them with the gradients after every step).
 * Run on the host loop (CPU default) and on the graph path a GPU backend uses.
 */
describe("AdamW", () => {
  for (const path of ["host loop", "graph"] as const) {
    it(`${path}: updates match a reference AdamW over 4 steps, with clipping and weight decay`, async () => {
      const model = await tinyModel(tmp.dir, `adamw-${path}`, { seed: 61 });
      if (path === "graph") process.env.WORKFLOW_R1_OPTIMIZER_GRAPH = "1";
      const opt = {
        learningRate: 1e-2,
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weightDecay: 0.1,
        maxGradNorm: 5,
      };
      const learner = createGgmlLearner({ modelPath: model.path, threads: 1, optimizer: opt });
      delete process.env.WORKFLOW_R1_OPTIMIZER_GRAPH;
      try {
        const batch = randomSequences(2, [9, 12], model.vocab, 13).map(({ tokens, mask }) => ({
          tokens,
          mask,
        }));
        const coef = batch.map((s) => Float32Array.from(s.tokens, (_, t) => (t % 2 === 0 ? -1 : 0.5)));
        const tracked = learner
          .parameterNames()
          .map(([name, count]) => ({ name, index: Math.floor(count / 3) }));
        const state = tracked.map(() => ({ m: 0, v: 0 }));
        let worst = 0;
        for (let step = 1; step <= 4; step++) {
          await Effect.runPromise(learner.backward(batch, coef));
          const norm = await Effect.runPromise(learner.gradNorm());
          const clip = norm > opt.maxGradNorm ? opt.maxGradNorm / norm : 1;
          const expected = tracked.map(({ name, index }, k) => {
            const g = learner.gradient(name, index) * clip;
            const s = state[k];
            s.m = opt.beta1 * s.m + (1 - opt.beta1) * g;
            s.v = opt.beta2 * s.v + (1 - opt.beta2) * g * g;
            const mh = s.m / (1 - opt.beta1 ** step);
            const vh = s.v / (1 - opt.beta2 ** step);
            const w = learner.getParameter(name, index);
            return (
              w * (1 - opt.learningRate * opt.weightDecay) -
              (opt.learningRate * mh) / (Math.sqrt(vh) + opt.eps)
            );
          });
          const stats = await Effect.runPromise(learner.step());
          expect(stats.gradNorm).toBeCloseTo(norm, 3);
          tracked.forEach(({ name, index }, k) => {
            worst = Math.max(worst, Math.abs(learner.getParameter(name, index) - expected[k]));
          });
          // The gradient is zeroed by the step.
          expect(await Effect.runPromise(learner.gradNorm())).toBe(0);
        }
        expect(worst).toBeLessThan(1e-5);
      } finally {
        await learner.dispose();
      }
    });
  }
});
