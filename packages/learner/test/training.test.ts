import { join } from "node:path";
import { it as effectIt } from "@effect/vitest";
import { Learner, NativeLearnerError } from "@workflow-r1/core";
import { Effect, Exit } from "effect";
import { afterAll, describe, expect, it } from "vitest";
import { createGgmlLearner, GgmlLearner } from "../src/index.js";
import { randomSequences, tempDir, tinyModel } from "./helpers.js";

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const nll = (lps: ReadonlyArray<Float32Array>) => {
  let s = 0;
  for (const lp of lps) for (let t = 1; t < lp.length; t++) s -= lp[t];
  return s;
};

describe("learning", () => {
  it("maximum likelihood (c = −1) memorises a few sequences: NLL falls by > 90%", async () => {
    const model = await tinyModel(tmp.dir, "memorise", { seed: 31 });
    const learner = createGgmlLearner({
      modelPath: model.path,
      threads: 1,
      optimizer: { learningRate: 1e-2 },
    });
    try {
      const batch = randomSequences(3, [12, 9, 15], model.vocab, 17).map(({ tokens, mask }) => ({
        tokens,
        mask,
      }));
      const coef = batch.map((s) => Float32Array.from(s.tokens, () => -1));
      const start = nll(await Effect.runPromise(learner.logprobs(batch)));
      let last = { gradNorm: 0, learningRate: 0, step: 0 };
      for (let i = 0; i < 60; i++) {
        await Effect.runPromise(learner.backward(batch, coef));
        last = await Effect.runPromise(learner.step());
      }
      const end = nll(await Effect.runPromise(learner.logprobs(batch)));
      expect(last.step).toBe(60);
      expect(last.learningRate).toBe(1e-2);
      expect(end).toBeLessThan(0.1 * start);
    } finally {
      await learner.dispose();
    }
  });

  it("mixed-sign coefficients: logp rises where c < 0 and falls where c > 0", async () => {
    const model = await tinyModel(tmp.dir, "mixed", { seed: 32 });
    const learner = createGgmlLearner({
      modelPath: model.path,
      threads: 1,
      optimizer: { learningRate: 5e-3 },
    });
    try {
      const seqs = randomSequences(2, [14, 10], model.vocab, 41);
      const batch = seqs.map(({ tokens, mask }) => ({ tokens, mask }));
      // Alternate signs by position: a good/bad split within each trajectory.
      const coef = batch.map((s) => Float32Array.from(s.tokens, (_, t) => (t % 2 === 0 ? -1 : 1)));
      const before = await Effect.runPromise(learner.logprobs(batch));
      for (let i = 0; i < 10; i++) {
        await Effect.runPromise(learner.backward(batch, coef));
        await Effect.runPromise(learner.step());
      }
      const after = await Effect.runPromise(learner.logprobs(batch));
      batch.forEach((s, i) => {
        for (let t = 1; t < s.tokens.length; t++) {
          if (coef[i][t] < 0) expect(after[i][t]).toBeGreaterThan(before[i][t]);
          else expect(after[i][t]).toBeLessThan(before[i][t]);
        }
      });
    } finally {
      await learner.dispose();
    }
  });

  it("clips the global gradient norm and reports the norm before clipping; schedule sets the rate", async () => {
    const model = await tinyModel(tmp.dir, "clip", { seed: 33 });
    const learner = createGgmlLearner({
      modelPath: model.path,
      threads: 1,
      optimizer: { learningRate: 1e-3, maxGradNorm: 1e-3, schedule: (step, lr) => lr * step },
    });
    try {
      const batch = randomSequences(1, [10], model.vocab, 3).map(({ tokens, mask }) => ({ tokens, mask }));
      const coef = batch.map((s) => Float32Array.from(s.tokens, () => -1));
      await Effect.runPromise(learner.backward(batch, coef));
      const norm = await Effect.runPromise(learner.gradNorm());
      const stats = await Effect.runPromise(learner.step());
      expect(stats.gradNorm).toBeCloseTo(norm, 4);
      expect(stats.gradNorm).toBeGreaterThan(1e-3);
      expect(await Effect.runPromise(learner.gradNorm())).toBe(0);
      await Effect.runPromise(learner.backward(batch, coef));
      expect((await Effect.runPromise(learner.step())).learningRate).toBeCloseTo(2e-3, 10);
    } finally {
      await learner.dispose();
    }
  });

  it("saveState / loadState resume: same weights, moments and step give the same next step", async () => {
    const model = await tinyModel(tmp.dir, "resume", { seed: 34 });
    const config = { modelPath: model.path, threads: 1, optimizer: { learningRate: 1e-2 } };
    const a = createGgmlLearner(config);
    const b = createGgmlLearner(config);
    try {
      const batch = randomSequences(2, [8, 11], model.vocab, 5).map(({ tokens, mask }) => ({ tokens, mask }));
      const coef = batch.map((s) => Float32Array.from(s.tokens, () => -1));
      for (let i = 0; i < 2; i++) {
        await Effect.runPromise(a.backward(batch, coef));
        await Effect.runPromise(a.step());
      }
      const state = join(tmp.dir, "state.gguf");
      await Effect.runPromise(a.saveState(state));
      await Effect.runPromise(b.loadState(state));
      expect(b.info().step).toBe(2);
      for (const l of [a, b]) {
        await Effect.runPromise(l.backward(batch, coef));
        await Effect.runPromise(l.step());
      }
      const [la, lb] = [
        await Effect.runPromise(a.logprobs(batch)),
        await Effect.runPromise(b.logprobs(batch)),
      ];
      for (let t = 1; t < la[1].length; t++) expect(lb[1][t]).toBe(la[1][t]);
      // A LoRA learner refuses a full-mode state.
      const lora = createGgmlLearner({ ...config, lora: { rank: 2 } });
      const exit = await Effect.runPromiseExit(lora.loadState(state));
      await lora.dispose();
      expect(Exit.isFailure(exit)).toBe(true);
    } finally {
      await a.dispose();
      await b.dispose();
    }
  });
});

describe("execution", () => {
  it("computes off the event loop, one operation at a time in call order", async () => {
    const model = await tinyModel(tmp.dir, "async", { seed: 38, dim: 64, ffn: 128, context: 128 });
    const learner = createGgmlLearner({ modelPath: model.path, threads: 1 });
    try {
      const batch = randomSequences(4, [100], model.vocab, 6).map(({ tokens, mask }) => ({ tokens, mask }));
      const coef = batch.map((s) => Float32Array.from(s.tokens, () => -1));
      let ticks = 0;
      let pending = true;
      const tick = () => {
        ticks++;
        if (pending) setImmediate(tick);
      };
      setImmediate(tick);
      const before = learner.logprobs(batch).pipe(Effect.runPromise);
      const grad = learner.backward(batch, coef).pipe(Effect.runPromise);
      const stepped = learner.step().pipe(Effect.runPromise);
      const after = learner.logprobs(batch).pipe(Effect.runPromise);
      const [lb, , stats, la] = await Promise.all([before, grad, stepped, after]);
      pending = false;
      expect(ticks).toBeGreaterThan(1);
      expect(stats.step).toBe(1);
      // The first logprobs ran before the step and the last one after it.
      expect(la[0][50]).not.toBe(lb[0][50]);
    } finally {
      await learner.dispose();
    }
  });
});

describe("bad inputs give NativeLearnerError, never a crash", () => {
  const failure = async (effect: Effect.Effect<unknown, NativeLearnerError>) => {
    const exit = await Effect.runPromiseExit(effect);
    if (Exit.isSuccess(exit)) throw new Error("expected a failure");
    const error = exit.cause.reasons.find((r) => r._tag === "Fail")?.error;
    expect(error).toBeInstanceOf(NativeLearnerError);
    return error as NativeLearnerError;
  };

  it("token id out of range, empty batch, over context, NaN coefficients, bad shapes, bad files", async () => {
    const model = await tinyModel(tmp.dir, "bad", { seed: 35, context: 32 });
    const learner = createGgmlLearner({ modelPath: model.path, threads: 1 });
    try {
      const ok = { tokens: Int32Array.from([1, 2, 3]), mask: Uint8Array.from([0, 1, 1]) };
      let e = await failure(
        learner.logprobs([{ tokens: Int32Array.from([1, model.vocab, 3]), mask: ok.mask }]),
      );
      expect(e.operation).toBe("logprobs");
      expect(e.message).toMatch(/position 1: token id 300 is outside the vocabulary/);
      e = await failure(learner.logprobs([{ tokens: Int32Array.from([1, -1, 3]), mask: ok.mask }]));
      expect(e.message).toMatch(/token id -1/);
      e = await failure(learner.backward([], []));
      expect(e.operation).toBe("backward");
      expect(e.message).toMatch(/empty batch/);
      e = await failure(learner.logprobs([{ tokens: new Int32Array(0), mask: new Uint8Array(0) }]));
      expect(e.message).toMatch(/no tokens/);
      e = await failure(learner.logprobs([{ tokens: new Int32Array(33), mask: new Uint8Array(33) }]));
      expect(e.message).toMatch(/33 tokens, over the context of 32/);
      e = await failure(learner.backward([ok], [Float32Array.from([0, Number.NaN, 1])]));
      expect(e.message).toMatch(/position 1: coefficient NaN is not finite/);
      e = await failure(learner.backward([ok], [Float32Array.from([0, 1])]));
      expect(e.message).toMatch(/2 coefficients for 3 tokens/);
      e = await failure(learner.logprobs([{ tokens: ok.tokens, mask: Uint8Array.from([1, 1, 1]) }]));
      expect(e.message).toMatch(/mask\[0\]/);
      e = await failure(learner.save(join(tmp.dir, "x.gguf"), { format: "lora" }));
      expect(e.operation).toBe("save");
      e = await failure(learner.exportAdapter());
      expect(e.operation).toBe("exportAdapter");
      e = await failure(learner.save(join(tmp.dir, "no-such-dir", "x.gguf"), { format: "gguf" }));
      expect(e.message).toMatch(/could not write/);
      e = await failure(learner.loadState(join(tmp.dir, "missing.gguf")));
      expect(e.operation).toBe("loadState");
      // Still usable after every failure.
      const [lp] = await Effect.runPromise(learner.logprobs([ok]));
      expect(Number.isFinite(lp[2])).toBe(true);
    } finally {
      await learner.dispose();
    }
    expect(() => createGgmlLearner({ modelPath: join(tmp.dir, "missing.gguf") })).toThrow(NativeLearnerError);
  });

  it("F16 weights: full fine-tuning holds them as F32 (twice the file's bytes), LoRA over the F16 base works", async () => {
    const model = await tinyModel(tmp.dir, "f16", { seed: 36, f16: true });
    const full = createGgmlLearner({ modelPath: model.path, threads: 1 });
    const weights = full.info().memory.weights;
    await full.dispose();
    const learner = createGgmlLearner({ modelPath: model.path, threads: 1, lora: { rank: 2 } });
    try {
      const batch = [{ tokens: Int32Array.from([5, 6, 7, 8]), mask: Uint8Array.from([0, 1, 1, 1]) }];
      await Effect.runPromise(learner.backward(batch, [Float32Array.from([0, -1, -1, -1])]));
      expect(await Effect.runPromise(learner.gradNorm())).toBeGreaterThan(0);
      // The F16 matrices make up most of the base: F32 copies hold nearly twice its bytes.
      expect(weights).toBeGreaterThan(1.8 * learner.info().memory.weights);
    } finally {
      await learner.dispose();
    }
  });
});

describe("GgmlLearner.layer", () => {
  effectIt.effect("provides the core Learner and frees it when the scope closes", () =>
    Effect.gen(function* () {
      const model = yield* Effect.promise(() => tinyModel(tmp.dir, "layer", { seed: 37 }));
      const batch = [{ tokens: Int32Array.from([1, 2, 3, 4]), mask: Uint8Array.from([0, 0, 1, 1]) }];
      const lps = yield* Effect.gen(function* () {
        const learner = yield* Learner;
        return yield* learner.logprobs(batch);
      }).pipe(Effect.provide(GgmlLearner.layer({ modelPath: model.path, threads: 1 })));
      expect(Number.isNaN(lps[0][1])).toBe(true);
      expect(lps[0][3]).toBeLessThan(0);
      // make: the learner fails cleanly once its scope has closed.
      const escaped = yield* Effect.scoped(GgmlLearner.make({ modelPath: model.path, threads: 1 }));
      const exit = yield* Effect.exit(escaped.logprobs(batch));
      expect(Exit.isFailure(exit)).toBe(true);
    }),
  );
});

describe("memory", () => {
  it("reserve compiles a shape without computing and reports its work buffer; info().memory tracks the largest", async () => {
    const model = await tinyModel(tmp.dir, "memory", { seed: 45 });
    const learner = createGgmlLearner({ modelPath: model.path, threads: 1, graphCacheSize: 2 });
    try {
      const small = await Effect.runPromise(learner.reserve({ rows: 1, length: 16, training: true }));
      const large = await Effect.runPromise(learner.reserve({ rows: 4, length: 64, training: true }));
      const forward = await Effect.runPromise(learner.reserve({ rows: 4, length: 64, training: false }));
      expect(small).toBeGreaterThan(0);
      expect(large).toBeGreaterThan(2 * small);
      expect(forward).toBeLessThan(large);
      const memory = learner.info().memory;
      expect(memory).toMatchObject({ compute: large, computeTokens: 256 });
      expect(memory.gradients).toBe(memory.weights); // full fine-tuning: one gradient per weight
      expect(memory.optimizer).toBe(2 * memory.weights);
      const exit = await Effect.runPromiseExit(learner.reserve({ rows: 1, length: 10_000, training: true }));
      expect(Exit.isFailure(exit)).toBe(true);
    } finally {
      await learner.dispose();
    }
  });

  it("a shape whose work buffer cannot be allocated fails cleanly, and smaller shapes still run", async () => {
    // 16 heads × 32,768² attention scores: a training graph of ~400 GB.
    const model = await tinyModel(tmp.dir, "huge", {
      seed: 46,
      vocab: 280,
      dim: 64,
      heads: 16,
      kvHeads: 16,
      context: 32_768,
    });
    const learner = createGgmlLearner({ modelPath: model.path, threads: 1 });
    try {
      const small = await Effect.runPromise(learner.reserve({ rows: 1, length: 64, training: true }));
      const huge = await Effect.runPromiseExit(learner.reserve({ rows: 1, length: 32_768, training: true }));
      // A machine that can reserve 400 GB (overcommit) has nothing to recover from.
      if (Exit.isFailure(huge)) {
        expect(JSON.stringify(huge)).toMatch(/could not allocate the compute graph for 1 × 32768 tokens/);
        expect(learner.info().memory.compute).toBe(small);
      }
      // Same topology, smaller: laid out afresh, not on the failed shape's plan.
      expect(
        await Effect.runPromise(learner.reserve({ rows: 1, length: 128, training: true })),
      ).toBeGreaterThan(small);
      const batch = randomSequences(1, [100], model.vocab, 3).map(({ tokens, mask }) => ({ tokens, mask }));
      const [lp] = await Effect.runPromise(learner.logprobs(batch));
      expect(Number.isFinite(lp![5])).toBe(true);
      await Effect.runPromise(learner.backward(batch, [Float32Array.from(batch[0]!.tokens, () => -1)]));
    } finally {
      await learner.dispose();
    }
  });
});
