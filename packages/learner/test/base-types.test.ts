import { Effect } from "effect";
import { afterAll, describe, expect, it } from "vitest";
import {
  backendsDirectory,
  convertModel,
  createGgmlLearner,
  type GgmlLearnerShape,
  loadAddon,
} from "../src/index.js";
import { randomSequences, tempDir, tinyModel } from "./helpers.js";

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const nll = (lps: ReadonlyArray<Float32Array>) => {
  let s = 0;
  for (const lp of lps) for (let t = 1; t < lp.length; t++) s -= lp[t];
  return s;
};

/** Every LoRA gradient element, in parameter order. */
const gradients = (learner: GgmlLearnerShape) =>
  learner
    .parameterNames()
    .flatMap(([name, count]) => Array.from({ length: count }, (_, i) => learner.gradient(name, i)));

const relativeError = (a: ReadonlyArray<number>, b: ReadonlyArray<number>) => {
  let d = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i] - b[i]) ** 2;
    n += b[i] ** 2;
  }
  return Math.sqrt(d / n);
};

// Rows of 256 so every weight fits Q4_K's 256-value super-blocks.
const base = () =>
  tinyModel(tmp.dir, "base-f32", { seed: 5, dim: 256, layers: 1, heads: 4, kvHeads: 2, ffn: 512 });

const open = (modelPath: string, transposedBase = false) =>
  createGgmlLearner({
    modelPath,
    threads: 1,
    transposedBase,
    lora: { rank: 4, alpha: 8 },
    optimizer: { learningRate: 1e-2 },
  });

// Finite differences are too noisy through half-precision or quantized products, so the
// reference is the same LoRA over an F32 model holding exactly the dequantized base weights: the
// two gradients differ only by the rounding of activations inside the low-precision products.
describe("LoRA over half-precision and quantized bases (CPU)", () => {
  const tolerance = { f16: 5e-3, bf16: 3e-2, q8_0: 3e-2, q4_K: 3e-2 } as const;
  for (const type of ["f16", "bf16", "q8_0", "q4_K"] as const) {
    it(`${type}: gradients match an F32 learner over the dequantized weights, and maximum likelihood learns`, async () => {
      const model = await base();
      const path = `${tmp.dir}/base-${type}.gguf`;
      const reference = `${tmp.dir}/base-${type}-as-f32.gguf`;
      // token_embd, 7 matrices per layer, output.
      expect(convertModel(model.path, path, type)).toBe(9);
      expect(convertModel(path, reference, "f32")).toBe(9);
      // BF16 and Q4_K also exercise the transposed-base cache (kept as BF16, and as F16 for Q4_K).
      const cached = type === "bf16" || type === "q4_K";
      const learner = open(path, cached);
      const exact = open(reference);
      if (cached) expect(learner.info().memory.transposedBase).toBeGreaterThan(0);
      try {
        const batch = randomSequences(2, [10, 7], model.vocab, 3).map(({ tokens, mask }) => ({
          tokens,
          mask,
        }));
        const coef = batch.map((s) => Float32Array.from(s.tokens, (_, t) => (t % 3 === 0 ? 0.5 : -1)));
        for (const l of [learner, exact]) {
          // B starts at 0, where A has no gradient: move B off zero first (same seed, same A).
          for (const [name, count] of l.parameterNames())
            if (name.endsWith("lora_b")) for (let i = 0; i < count; i += 7) l.setParameter(name, i, 0.05);
          await Effect.runPromise(l.backward(batch, coef));
        }
        const got = gradients(learner);
        expect(got.some((g) => g !== 0)).toBe(true);
        expect(relativeError(got, gradients(exact))).toBeLessThan(tolerance[type]);

        await Effect.runPromise(learner.zeroGrad());
        const ml = batch.map((s) => Float32Array.from(s.tokens, () => -1));
        const start = nll(await Effect.runPromise(learner.logprobs(batch)));
        for (let i = 0; i < 25; i++) {
          await Effect.runPromise(learner.backward(batch, ml));
          await Effect.runPromise(learner.step());
        }
        expect(nll(await Effect.runPromise(learner.logprobs(batch)))).toBeLessThan(0.5 * start);
      } finally {
        await learner.dispose();
        await exact.dispose();
      }
    });
  }

  it("refuses an unknown type by name", async () => {
    const model = await base();
    expect(() => convertModel(model.path, `${tmp.dir}/x.gguf`, "q9_9")).toThrow(/unknown ggml type q9_9/);
  });
});

describe("backend support check", () => {
  it("names the op, its types and shapes instead of aborting", () => {
    const message = loadAddon().probeUnsupportedOp(backendsDirectory());
    expect(message).toMatch(/the CPU backend does not support MUL_MAT/);
    expect(message).toMatch(/f32 \[4, 4, 1, 1\] from f32 "a", f16 "b"/);
  });
});

describe("precision: f16 (F16 products of F32 master weights)", () => {
  it("stays close to F32 in logprobs and gradients, and keeps the weights F32", async () => {
    const model = await base();
    const f32 = createGgmlLearner({ modelPath: model.path, threads: 1 });
    const f16 = createGgmlLearner({ modelPath: model.path, threads: 1, precision: "f16" });
    try {
      expect(f16.info().precision).toBe("f16");
      const batch = randomSequences(2, [12, 9], model.vocab, 8).map(({ tokens, mask }) => ({ tokens, mask }));
      const coef = batch.map((s) => Float32Array.from(s.tokens, (_, t) => (t % 2 === 0 ? 1 : -1)));
      const [a, b] = await Promise.all([f32, f16].map((l) => Effect.runPromise(l.logprobs(batch))));
      let diff = 0;
      a.forEach((lp, i) => {
        for (let t = 1; t < lp.length; t++) diff = Math.max(diff, Math.abs(lp[t] - b[i][t]));
      });
      if (process.env.PRECISION_DEBUG) console.log(`max |Δ logp| f16 vs f32: ${diff}`);
      expect(diff).toBeGreaterThan(0); // really computed in F16
      expect(diff).toBeLessThan(2e-2);
      for (const l of [f32, f16]) await Effect.runPromise(l.backward(batch, coef));
      expect(relativeError(gradients(f16), gradients(f32))).toBeLessThan(2e-2);
    } finally {
      await f32.dispose();
      await f16.dispose();
    }
  });
});
