// Full fine-tuning from any base type (weights dequantized to F32 master weights at load), the
// frozen reference learner, and LoRA's base log-probabilities (the adapter left out).
import { NativeLearnerError } from "@workflow-r1/core";
import { GgmlType, type GgufTensor, gguf, metadataValue, readGguf, writeGguf } from "@workflow-r1/gguf";
import { Effect, Exit } from "effect";
import { afterAll, describe, expect, it } from "vitest";
import { convertModel, createGgmlLearner, type GgmlLearnerShape } from "../src/index.js";
import { randomSequences, tempDir, tinyModel } from "./helpers.js";

const tmp = tempDir();
afterAll(() => tmp.cleanup());

type Learner = GgmlLearnerShape & { readonly dispose: () => Promise<void> };
type Batch = ReadonlyArray<{ readonly tokens: Int32Array; readonly mask: Uint8Array }>;

const run = <A>(effect: Effect.Effect<A, NativeLearnerError>) => Effect.runPromise(effect);

const nll = (lps: ReadonlyArray<Float32Array>) => {
  let s = 0;
  for (const lp of lps) for (let t = 1; t < lp.length; t++) s -= lp[t];
  return s;
};

/** max |a − b| over the masked positions (NaN must match NaN). */
const maxDiff = (a: ReadonlyArray<Float32Array>, b: ReadonlyArray<Float32Array>) => {
  let d = 0;
  a.forEach((lp, i) => {
    expect(lp.length).toBe(b[i].length);
    for (let t = 0; t < lp.length; t++) {
      expect(Number.isNaN(lp[t])).toBe(Number.isNaN(b[i][t]));
      if (!Number.isNaN(lp[t])) d = Math.max(d, Math.abs(lp[t] - b[i][t]));
    }
  });
  return d;
};

/** Opens learners and disposes of all of them at the end. */
const using = async (
  f: (open: (config: Parameters<typeof createGgmlLearner>[0]) => Learner) => Promise<void>,
) => {
  const opened: Learner[] = [];
  try {
    await f((config) => {
      const l = createGgmlLearner({ threads: 1, ...config });
      opened.push(l);
      return l;
    });
  } finally {
    for (const l of opened) await l.dispose();
  }
};

// Rows of 256 values so every matrix fits the K-quants' 256-value super-blocks; one layer keeps it fast.
let basePath: Promise<string> | undefined;
const base = () => {
  basePath ??= tinyModel(tmp.dir, "any-base-f32", {
    seed: 11,
    dim: 256,
    layers: 1,
    heads: 4,
    kvHeads: 2,
    ffn: 256,
  }).then((m) => m.path);
  return basePath;
};
const VOCAB = 300;
const batch: Batch = randomSequences(3, [12, 7, 9], VOCAB, 5).map(({ tokens, mask }) => ({ tokens, mask }));
const ml = batch.map((s) => Float32Array.from(s.tokens, () => -1));

/** A file mixing types the way real ones do (SmolLM2 Q4_1: Q8_0 embedding, Q4_1 matrices). */
const mixedBase = async () => {
  const from = await base();
  const paths = { q8_0: "", q4_1: "", q5_0: "" };
  for (const type of ["q8_0", "q4_1", "q5_0"] as const) {
    paths[type] = `${tmp.dir}/any-part-${type}.gguf`;
    convertModel(from, paths[type], type);
  }
  const [f32, q8, q41, q50] = await Promise.all(
    [from, paths.q8_0, paths.q4_1, paths.q5_0].map((p) => readGguf(p)),
  );
  const pick = (file: typeof f32, name: string) => file.tensors.find((t) => t.name === name) as GgufTensor;
  const tensors = f32.tensors.map((t): GgufTensor => {
    if (t.name === "token_embd.weight") return pick(q8, t.name);
    if (t.name === "output.weight") return pick(q50, t.name);
    if (t.name.endsWith("_norm.weight")) return { ...t, type: GgmlType.F16 }; // written as F16
    return pick(q41, t.name);
  });
  const path = `${tmp.dir}/any-base-mixed.gguf`;
  // LLAMA_FTYPE_MOSTLY_Q4_1, as SmolLM2's file says.
  await writeGguf(path, { metadata: { ...f32.metadata, "general.file_type": gguf.u32(3) }, tensors });
  return path;
};

// Each type with the general.file_type (llama_ftype) its file declares.
const TYPES = { f32: 0, f16: 1, bf16: 32, q8_0: 7, q4_0: 2, q4_1: 3, q4_K: 15, q6_K: 18, mixed: 3 } as const;

describe("full fine-tuning from any base type (F32 master weights)", () => {
  for (const [type, fileType] of Object.entries(TYPES)) {
    it(`${type}: equals the F32 dequantization, learns, and saves an all-F32 GGUF that reopens the same`, async () => {
      const path = type === "mixed" ? await mixedBase() : `${tmp.dir}/any-base-${type}.gguf`;
      if (type !== "mixed") convertModel(await base(), path, type);
      const stored = await readGguf(path, { tensorData: false });
      expect(metadataValue(stored, "general.file_type")).toBe(fileType);
      const matrix = stored.tensors.find((t) => t.name === "blk.0.ffn_up.weight");
      if (type !== "f32") expect(matrix?.type).not.toBe(GgmlType.F32); // really stored in another type
      const reference = `${tmp.dir}/any-base-${type}-as-f32.gguf`;
      convertModel(path, reference, "f32");
      await using(async (open) => {
        const learner = open({ modelPath: path, optimizer: { learningRate: 1e-3 } });
        const exact = open({ modelPath: reference });
        expect(learner.info().mode).toBe("full");
        expect(learner.info().memory.weights).toBe(exact.info().memory.weights); // F32 in memory
        const before = await run(learner.logprobs(batch));
        expect(maxDiff(before, await run(exact.logprobs(batch)))).toBeLessThanOrEqual(1e-5);

        await run(learner.backward(batch, ml));
        await run(learner.step());
        const after = await run(learner.logprobs(batch));
        expect(nll(after)).toBeLessThan(nll(before));

        const saved = `${tmp.dir}/any-trained-${type}.gguf`;
        await run(learner.save(saved, { format: "gguf" }));
        const file = await readGguf(saved, { tensorData: false });
        expect(file.tensors.map((t) => t.name)).toEqual(stored.tensors.map((t) => t.name));
        expect(file.tensors.every((t) => t.type === GgmlType.F32)).toBe(true);
        expect(metadataValue(file, "general.file_type")).toBe(0);
        const reopened = open({ modelPath: saved });
        expect(maxDiff(await run(reopened.logprobs(batch)), after)).toBeLessThanOrEqual(1e-5);
      });
    });
  }

  it("refuses a tensor type without a conversion to F32, naming the tensor and the type", async () => {
    const f32 = await readGguf(await base());
    const tensors = f32.tensors.map(
      (t): GgufTensor =>
        t.name === "blk.0.attn_norm.weight"
          ? { ...t, type: GgmlType.I32, data: new Uint8Array((t.data as Float32Array).buffer.slice(0)) }
          : t,
    );
    const path = `${tmp.dir}/any-base-i32.gguf`;
    await writeGguf(path, { metadata: f32.metadata, tensors });
    for (const frozen of [false, true])
      expect(() => createGgmlLearner({ modelPath: path, threads: 1, frozen })).toThrow(
        /tensor blk\.0\.attn_norm\.weight is i32, which ggml cannot convert to F32/,
      );
  });
});

const failure = async (effect: Effect.Effect<unknown, NativeLearnerError>) => {
  const exit = await Effect.runPromiseExit(effect);
  if (!Exit.isFailure(exit)) throw new Error("expected a failure");
  const error = exit.cause.reasons.find((r) => r._tag === "Fail")?.error;
  expect(error).toBeInstanceOf(NativeLearnerError);
  return error as NativeLearnerError;
};

describe("frozen learner (inference only: the KL reference of full fine-tuning)", () => {
  it("matches a full learner at step 0 on a quantized base, holds no gradients or moments, refuses training", async () => {
    const path = `${tmp.dir}/any-frozen-q4_1.gguf`;
    convertModel(await base(), path, "q4_1");
    await using(async (open) => {
      const frozen = open({ modelPath: path, frozen: true });
      const full = open({ modelPath: path });
      const info = frozen.info();
      expect(info.mode).toBe("frozen");
      expect(info.trainableParameters).toBe(0);
      expect(frozen.parameterNames()).toEqual([]);
      expect(info.memory).toMatchObject({ trainable: 0, gradients: 0, optimizer: 0 });
      expect(info.memory.weights).toBe(full.info().memory.weights); // dequantized to F32 as well
      expect(full.info().memory.gradients).toBe(info.memory.weights);
      expect(full.info().memory.optimizer).toBe(2 * info.memory.weights);

      const lp = await run(frozen.logprobs(batch));
      expect(maxDiff(lp, await run(full.logprobs(batch)))).toBe(0);
      expect(maxDiff(await run(frozen.baseLogprobs(batch)), lp)).toBe(0);

      const refused = [
        ["backward", frozen.backward(batch, ml)],
        ["step", frozen.step()],
        ["save", frozen.save(`${tmp.dir}/frozen.gguf`, { format: "gguf" })],
        ["saveState", frozen.saveState(`${tmp.dir}/frozen-state.gguf`)],
        ["loadState", frozen.loadState(`${tmp.dir}/frozen-state.gguf`)],
        ["gradNorm", frozen.gradNorm()],
        ["zeroGrad", frozen.zeroGrad()],
        ["reserve", frozen.reserve({ rows: 1, length: 64, training: true })],
      ] as const;
      for (const [operation, effect] of refused) {
        const error = await failure(effect);
        expect(error.operation).toBe(operation);
        expect(error.message).toMatch(/frozen \(inference only/);
      }
      // Still usable afterwards, and a forward graph can be reserved.
      expect(await run(frozen.reserve({ rows: 1, length: 64, training: false }))).toBeGreaterThan(0);
      expect(maxDiff(await run(frozen.logprobs(batch)), lp)).toBe(0);
    });
  });

  it("cannot be combined with LoRA", async () => {
    expect(() => createGgmlLearner({ modelPath: "unused.gguf", frozen: true, lora: { rank: 2 } })).toThrow(
      /frozen learner has no LoRA adapter/,
    );
  });
});

describe("baseLogprobs: the LoRA reference without a second model", () => {
  for (const type of ["f32", "q4_K"] as const) {
    it(`${type}: equals logprobs at B = 0, stays the base's while the adapter trains`, async () => {
      const path = `${tmp.dir}/any-lora-${type}.gguf`;
      convertModel(await base(), path, type);
      await using(async (open) => {
        const learner = open({
          modelPath: path,
          lora: { rank: 4, alpha: 8 },
          optimizer: { learningRate: 1e-2 },
        });
        const start = await run(learner.baseLogprobs(batch));
        expect(maxDiff(start, await run(learner.logprobs(batch)))).toBe(0);
        for (let i = 0; i < 3; i++) {
          await run(learner.backward(batch, ml));
          await run(learner.step());
        }
        const trained = await run(learner.logprobs(batch));
        expect(nll(trained)).toBeLessThan(nll(start));
        expect(maxDiff(trained, start)).toBeGreaterThan(1e-2);
        expect(maxDiff(await run(learner.baseLogprobs(batch)), start)).toBe(0);
        if (type === "f32") {
          // The same base in a frozen learner (F32 both ways: the same products).
          const frozen = open({ modelPath: path, frozen: true });
          expect(maxDiff(await run(frozen.logprobs(batch)), start)).toBeLessThanOrEqual(1e-5);
        }
      });
    });
  }

  it("keeps reuseForward correct: before logprobs it keeps the reuse, in between it drops it", async () => {
    const path = await base();
    await using(async (open) => {
      const learner = open({ modelPath: path, lora: { rank: 4 } });
      const b = learner.parameterNames().find(([name]) => name.endsWith("lora_b"))?.[0] as string;
      const grads = () => Array.from({ length: 64 }, (_, i) => learner.gradient(b, i));
      await run(learner.baseLogprobs(batch));
      await run(learner.logprobs(batch));
      await run(learner.backward(batch, ml));
      expect(learner.info().reusedForwards).toBe(1);
      const reused = grads();
      expect(reused.some((g) => g !== 0)).toBe(true);
      await run(learner.zeroGrad());
      await run(learner.logprobs(batch));
      await run(learner.baseLogprobs(batch));
      await run(learner.backward(batch, ml)); // the kept activations are gone: a full pass
      expect(learner.info().reusedForwards).toBe(1);
      expect(grads()).toEqual(reused);
    });
  });

  it("fails with a typed error in full fine-tuning, whose base weights change", async () => {
    const path = await base();
    await using(async (open) => {
      const error = await failure(open({ modelPath: path }).baseLogprobs(batch));
      expect(error.operation).toBe("baseLogprobs");
      expect(error.message).toMatch(/frozen: true/);
    });
  });
});
