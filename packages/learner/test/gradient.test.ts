import { Effect } from "effect";
import { afterAll, describe, expect, it } from "vitest";
import { createGgmlLearner, type GgmlLearnerShape } from "../src/index.js";
import { randomSequences, tempDir, tinyModel } from "./helpers.js";

const tmp = tempDir();
afterAll(() => tmp.cleanup());

type Batch = ReadonlyArray<{ tokens: Int32Array; mask: Uint8Array }>;

/** Σ c_t logp_t in float64 from the learner's logprobs. */
const surrogate = async (learner: GgmlLearnerShape, batch: Batch, coef: ReadonlyArray<Float32Array>) => {
  const lps = await Effect.runPromise(learner.logprobs(batch));
  let s = 0;
  lps.forEach((lp, i) => {
    for (let t = 0; t < lp.length; t++) if (batch[i].mask[t] === 1) s += coef[i][t] * lp[t];
  });
  return s;
};

/** Analytic gradient vs central differences on sampled elements of every trainable tensor. */
const check = async (
  learner: GgmlLearnerShape,
  batch: Batch,
  coef: ReadonlyArray<Float32Array>,
  seed: number,
) => {
  await Effect.runPromise(learner.zeroGrad());
  await Effect.runPromise(learner.backward(batch, coef));
  const rand = randomSequences(1, [1], 1 << 30, seed)[0].next;
  const h = 1e-2;
  let worst = 0;
  let checked = 0;
  for (const [name, count] of learner.parameterNames()) {
    // Of 16 random elements, check the 2 with the largest gradient: float32 forward noise
    // (~1e-6 relative per logp) swamps finite differences of near-zero gradients.
    const candidates = Array.from({ length: 16 }, () => Math.floor(rand() * count));
    candidates.sort((a, b) => Math.abs(learner.gradient(name, b)) - Math.abs(learner.gradient(name, a)));
    for (const index of candidates.slice(0, 2)) {
      const analytic = learner.gradient(name, index);
      const w = learner.getParameter(name, index);
      learner.setParameter(name, index, w + h);
      const plus = await surrogate(learner, batch, coef);
      learner.setParameter(name, index, w - h);
      const minus = await surrogate(learner, batch, coef);
      learner.setParameter(name, index, w);
      const numeric = (plus - minus) / (2 * h);
      // Relative error with a floor, so elements with a near-zero gradient do not divide by ~0.
      const err = Math.abs(analytic - numeric) / Math.max(Math.abs(analytic), Math.abs(numeric), 1e-2);
      if (process.env.GRAD_DEBUG) console.log(name, index, analytic, numeric, err);
      worst = Math.max(worst, err);
      checked++;
    }
  }
  return { worst, checked };
};

// One thread: hundreds of tiny graphs, where thread barriers on a busy 2-core machine cost more than the work.
describe("gradient check: Σ c·logp against central finite differences", () => {
  for (const architecture of ["llama", "qwen2"] as const) {
    it(`${architecture}, full fine-tuning, coefficients of both signs`, async () => {
      const model = await tinyModel(tmp.dir, `grad-${architecture}`, {
        architecture,
        seed: 11,
        vocab: 280,
        dim: 16,
        heads: 4,
        kvHeads: 2,
        ffn: 32,
      });
      const learner = createGgmlLearner({ modelPath: model.path, threads: 1 });
      try {
        const seqs = randomSequences(2, [9, 6], model.vocab, 5);
        const batch = seqs.map(({ tokens, mask }) => ({ tokens, mask }));
        const coef = seqs.map(({ tokens, next }) => Float32Array.from(tokens, () => next() * 2 - 1));
        expect(coef.some((c) => c.some((x) => x < 0)) && coef.some((c) => c.some((x) => x > 0))).toBe(true);
        const { worst, checked } = await check(learner, batch, coef, 3);
        expect(checked).toBe(learner.parameterNames().length * 2);
        expect(worst).toBeLessThan(1e-2);
      } finally {
        await learner.dispose();
      }
    });
  }

  it("LoRA: gradients of A and B (B made non-zero first)", async () => {
    const model = await tinyModel(tmp.dir, "grad-lora", {
      seed: 12,
      vocab: 280,
      dim: 16,
      heads: 4,
      kvHeads: 2,
      ffn: 32,
    });
    const learner = createGgmlLearner({ modelPath: model.path, threads: 1, lora: { rank: 2, alpha: 4 } });
    try {
      for (const [name, count] of learner.parameterNames())
        if (name.endsWith(".lora_b"))
          for (let i = 0; i < count; i++) learner.setParameter(name, i, Math.sin(i + count) * 0.3);
      const seqs = randomSequences(2, [8, 5], model.vocab, 9);
      const batch = seqs.map(({ tokens, mask }) => ({ tokens, mask }));
      const coef = seqs.map(({ tokens, next }) => Float32Array.from(tokens, () => next() * 2 - 1));
      const { worst } = await check(learner, batch, coef, 4);
      expect(learner.parameterNames().every(([n]) => n.includes(".lora_"))).toBe(true);
      expect(worst).toBeLessThan(1e-2);
    } finally {
      await learner.dispose();
    }
  });

  it("backward accumulates over micro-batches: two halves give the gradient of the whole", async () => {
    const model = await tinyModel(tmp.dir, "grad-acc", { seed: 13, vocab: 280, dim: 16, ffn: 32 });
    const learner = createGgmlLearner({ modelPath: model.path, threads: 1, microBatchTokens: 8 });
    try {
      const seqs = randomSequences(3, [7, 4, 6], model.vocab, 21);
      const batch = seqs.map(({ tokens, mask }) => ({ tokens, mask }));
      const coef = seqs.map(({ tokens, next }) => Float32Array.from(tokens, () => next() * 2 - 1));
      const names = learner.parameterNames().map(([n]) => n);
      await Effect.runPromise(learner.backward(batch, coef));
      const whole = names.map((n) => learner.gradient(n, 1));
      await Effect.runPromise(learner.zeroGrad());
      expect(learner.gradient(names[0], 1)).toBe(0);
      await Effect.runPromise(learner.backward(batch.slice(0, 1), coef.slice(0, 1)));
      await Effect.runPromise(learner.backward(batch.slice(1), coef.slice(1)));
      names.forEach((n, k) => {
        expect(learner.gradient(n, 1)).toBeCloseTo(whole[k], 5);
      });
      expect(whole.some((g) => g !== 0)).toBe(true);
    } finally {
      await learner.dispose();
    }
  });
});

describe("one work buffer for every compiled shape", () => {
  it("interleaved shapes and graph kinds, the buffer growing and graphs evicted, give a fresh learner's results", async () => {
    const model = await tinyModel(tmp.dir, "shapes", {
      seed: 14,
      vocab: 280,
      dim: 16,
      ffn: 32,
      context: 256,
    });
    const opts = { modelPath: model.path, threads: 1, reuseForward: false };
    // Packed shapes (rows × row length): 1 × 64, 3 × 128, 5 × 64, 1 × 256.
    const batches = [
      [9, 4],
      [100, 90, 70],
      [60, 60, 60, 60, 60],
      [200, 30],
    ].map((lengths, k) => randomSequences(lengths.length, lengths, model.vocab, 40 + k));
    const coefs = batches.map((b) =>
      b.map(({ tokens, next }) => Float32Array.from(tokens, () => next() * 2 - 1)),
    );
    const plain = (k: number) => batches[k]!.map(({ tokens, mask }) => ({ tokens, mask }));
    // Reference: each batch on its own fresh learner (its first and only shape).
    const want: { logp: Float32Array[]; grad: number[] }[] = [];
    for (let k = 0; k < batches.length; k++) {
      const fresh = createGgmlLearner(opts);
      try {
        const logp = await Effect.runPromise(fresh.logprobs(plain(k)));
        await Effect.runPromise(fresh.backward(plain(k), coefs[k]!));
        want.push({ logp, grad: fresh.parameterNames().map(([n]) => fresh.gradient(n, 3)) });
      } finally {
        await fresh.dispose();
      }
    }
    // Smallest first, so the work buffer is reallocated larger under graphs laid out before; a
    // cache of 2 also evicts and recompiles while the shapes alternate.
    for (const graphCacheSize of [8, 2]) {
      const learner = createGgmlLearner({ ...opts, graphCacheSize });
      try {
        for (const k of [0, 2, 0, 1, 2, 3, 0, 1, 3, 2]) {
          const logp = await Effect.runPromise(learner.logprobs(plain(k)));
          logp.forEach((lp, i) => {
            for (let t = 0; t < lp.length; t++) expect(lp[t]).toBe(want[k]!.logp[i]![t]);
          });
          await Effect.runPromise(learner.zeroGrad());
          await Effect.runPromise(learner.backward(plain(k), coefs[k]!));
          learner.parameterNames().forEach(([n], j) => {
            expect(learner.gradient(n, 3)).toBe(want[k]!.grad[j]);
          });
        }
      } finally {
        await learner.dispose();
      }
    }
  });
});

describe("token embedding gradient as a one-hot product (the GPU default)", () => {
  it("matches GET_ROWS_BACK's gradient", async () => {
    const model = await tinyModel(tmp.dir, "dense-embedding", { seed: 71 });
    const open = (dense: boolean) => {
      process.env.WORKFLOW_R1_DENSE_EMBEDDING_GRAD = dense ? "1" : "0";
      try {
        return createGgmlLearner({ modelPath: model.path, threads: 1 });
      } finally {
        delete process.env.WORKFLOW_R1_DENSE_EMBEDDING_GRAD;
      }
    };
    const sparse = open(false);
    const dense = open(true);
    try {
      expect([sparse.info().denseEmbeddingGradient, dense.info().denseEmbeddingGradient]).toEqual([
        false,
        true,
      ]);
      const batch = randomSequences(3, [9, 14, 5], model.vocab, 23).map(({ tokens, mask }) => ({
        tokens,
        mask,
      }));
      const coef = batch.map((s) => Float32Array.from(s.tokens, (_, t) => (t % 2 === 0 ? 1 : -0.5)));
      for (const l of [sparse, dense]) await Effect.runPromise(l.backward(batch, coef));
      const count = sparse.parameterNames().find(([n]) => n === "token_embd.weight")?.[1] ?? 0;
      let worst = 0;
      let largest = 0;
      for (let i = 0; i < count; i++) {
        const a = sparse.gradient("token_embd.weight", i);
        worst = Math.max(worst, Math.abs(a - dense.gradient("token_embd.weight", i)));
        largest = Math.max(largest, Math.abs(a));
      }
      expect(largest).toBeGreaterThan(0);
      expect(worst).toBeLessThan(1e-5 * Math.max(1, largest));
    } finally {
      await sparse.dispose();
      await dense.dispose();
    }
  });
});

describe("a backward after logprobs on the same batch reuses its forward pass", () => {
  it("gives the full pass's gradient, and falls back to the full pass once the weights changed", async () => {
    const model = await tinyModel(tmp.dir, "reuse-forward", { seed: 81 });
    const config = { modelPath: model.path, threads: 1, optimizer: { learningRate: 1e-2 } };
    const reusing = createGgmlLearner(config);
    const plain = createGgmlLearner({ ...config, reuseForward: false });
    const grads = (l: GgmlLearnerShape) =>
      l.parameterNames().flatMap(([n, c]) => Array.from({ length: c }, (_, i) => l.gradient(n, i)));
    try {
      const batch = randomSequences(3, [11, 7, 15], model.vocab, 29).map(({ tokens, mask }) => ({
        tokens,
        mask,
      }));
      const coef = batch.map((s) => Float32Array.from(s.tokens, (_, t) => (t % 3 === 0 ? 1 : -0.5)));
      const [a, b] = [
        await Effect.runPromise(reusing.logprobs(batch)),
        await Effect.runPromise(plain.logprobs(batch)),
      ];
      // The training graph's forward half gives the forward graph's log-probabilities.
      a.forEach((lp, i) => {
        for (let t = 1; t < lp.length; t++) expect(lp[t]).toBeCloseTo(b[i][t], 5);
      });
      for (const l of [reusing, plain]) await Effect.runPromise(l.backward(batch, coef));
      expect(reusing.info().reusedForwards).toBe(1);
      expect(plain.info().reusedForwards).toBe(0);
      const [ga, gb] = [grads(reusing), grads(plain)];
      ga.forEach((g, i) => {
        expect(g).toBeCloseTo(gb[i], 5);
      });

      // logprobs, then a step, then backward: the kept activations are stale, the full pass runs.
      for (const l of [reusing, plain]) await Effect.runPromise(l.logprobs(batch));
      for (const l of [reusing, plain]) await Effect.runPromise(l.step());
      for (const l of [reusing, plain]) await Effect.runPromise(l.backward(batch, coef));
      expect(reusing.info().reusedForwards).toBe(1);
      const [ha, hb] = [grads(reusing), grads(plain)];
      ha.forEach((g, i) => {
        expect(g).toBeCloseTo(hb[i], 5);
      });
    } finally {
      await reusing.dispose();
      await plain.dispose();
    }
  });
});
