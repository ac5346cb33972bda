// CUDA checks of the learner, as a plain Node script so it runs where no test runner is
// installed (the packed GPU checkout): node packages/learner/test/cuda-checks.mjs
// Needs an addon built with WORKFLOW_R1_CUDA=1 (scripts/build-cuda.sh) and a GPU. Prints one JSON
// line per check and exits non-zero when one fails. test/cuda.test.ts runs it under vitest.
// WORKFLOW_R1_CUDA_TF32=0 checks the precise mode (CPU vs GPU log-probabilities within 1e-4).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTinyLlama } from "@workflow-r1/gguf";
import { Effect } from "effect";
import { backendsDirectory, convertModel, createGgmlLearner, loadAddon } from "../dist/index.js";

const dir = mkdtempSync(join(tmpdir(), "wr1-cuda-checks-"));
const run = (e) => Effect.runPromise(e);
let failed = 0;
const report = (name, ok, details) => {
  if (!ok) failed++;
  console.log(JSON.stringify({ check: name, ok, ...details }));
};
let seed = 99;
const rand = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
};
const batchOf = (lengths, vocab) =>
  lengths.map((n) => ({
    tokens: Int32Array.from({ length: n }, () => Math.floor(rand() * vocab)),
    mask: Uint8Array.from({ length: n }, (_, t) => (t === 0 ? 0 : 1)),
  }));
const maxDiff = (a, b) => {
  let m = 0;
  a.forEach((x, i) => {
    for (let t = 0; t < x.length; t++) if (!Number.isNaN(x[t])) m = Math.max(m, Math.abs(x[t] - b[i][t]));
  });
  return m;
};
const grads = (l) =>
  l.parameterNames().flatMap(([n, c]) => Array.from({ length: c }, (_, i) => l.gradient(n, i)));
const relErr = (a, b) => {
  let d = 0;
  let n = 0;
  a.forEach((x, i) => {
    d += (x - b[i]) ** 2;
    n += b[i] ** 2;
  });
  return Math.sqrt(d / n);
};

try {
  report("unsupported op is an error, not an abort", true, {
    message: loadAddon().probeUnsupportedOp(backendsDirectory(), true),
  });
  const tiny = await createTinyLlama({
    path: join(dir, "tiny.gguf"),
    vocab: 320,
    dim: 256,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    ffn: 512,
    context: 256,
    seed: 3,
  });
  const batch = batchOf([40, 17, 63, 8], 320);
  const coef = batch.map((s) => Float32Array.from(s.tokens, () => rand() * 2 - 1));

  // Full fine-tuning: logprobs, gradients and one AdamW step, CPU against GPU.
  const opt = { learningRate: 1e-3 };
  const cpu = createGgmlLearner({ modelPath: tiny.path, threads: 4, optimizer: opt });
  const gpu = createGgmlLearner({ modelPath: tiny.path, gpu: true, optimizer: opt });
  const [lc, lg] = [await run(cpu.logprobs(batch)), await run(gpu.logprobs(batch))];
  for (const l of [cpu, gpu]) await run(l.backward(batch, coef));
  const gradErr = relErr(grads(gpu), grads(cpu));
  for (const l of [cpu, gpu]) await run(l.step());
  const [sc, sg] = [await run(cpu.logprobs(batch)), await run(gpu.logprobs(batch))];
  // Precise mode (WORKFLOW_R1_CUDA_TF32=0 with a libggml-cuda.so from scripts/build-cuda.sh): no TF32.
  const precise = process.env.WORKFLOW_R1_CUDA_TF32 === "0";
  const bound = precise ? 1e-4 : 2e-2;
  report(
    `full F32: CPU vs GPU (${precise ? "precise" : "fast, TF32"})`,
    maxDiff(lc, lg) < bound && gradErr < 2e-2 && maxDiff(sc, sg) < 5e-2,
    {
      backend: gpu.info().backend,
      logprobMaxAbsDiff: maxDiff(lc, lg),
      gradientRelativeError: gradErr,
      afterStepLogprobMaxAbsDiff: maxDiff(sc, sg),
      memory: gpu.info().memory,
    },
  );
  // Packing: one micro-batch of packed rows against one sequence per call.
  const alone = [];
  for (const s of batch) alone.push((await run(gpu.logprobs([s])))[0]);
  const packed = await run(gpu.logprobs(batch));
  report("packed rows match sequences alone", maxDiff(packed, alone) < 1e-3, {
    maxAbsDiff: maxDiff(packed, alone),
  });
  await cpu.dispose();
  await gpu.dispose();

  // LoRA on each base type: GPU gradients against the CPU's on the same file; learning.
  for (const type of ["f32", "f16", "bf16", "q8_0", "q4_K"]) {
    const path = type === "f32" ? tiny.path : join(dir, `tiny-${type}.gguf`);
    if (type !== "f32") convertModel(tiny.path, path, type);
    const config = { modelPath: path, lora: { rank: 8 }, optimizer: { learningRate: 1e-2 } };
    const c = createGgmlLearner({ ...config, threads: 4 });
    const g = createGgmlLearner({ ...config, gpu: true });
    try {
      for (const l of [c, g]) {
        for (const [name, count] of l.parameterNames())
          if (name.endsWith("lora_b")) for (let i = 0; i < count; i += 5) l.setParameter(name, i, 0.02);
        await run(l.backward(batch, coef));
      }
      const err = relErr(grads(g), grads(c));
      await run(g.zeroGrad());
      const ml = batch.map((s) => Float32Array.from(s.tokens, () => -1));
      const nll = (lps) => -lps.reduce((a, lp) => a + lp.reduce((x, y, t) => (t > 0 ? x + y : x), 0), 0);
      const start = nll(await run(g.logprobs(batch)));
      for (let i = 0; i < 20; i++) {
        await run(g.backward(batch, ml));
        await run(g.step());
      }
      const end = nll(await run(g.logprobs(batch)));
      report(`LoRA over ${type} base on GPU`, err < 5e-2 && end < 0.7 * start, {
        gradientRelativeErrorVsCpu: err,
        nllStart: start,
        nllEnd: end,
      });
    } catch (e) {
      report(`LoRA over ${type} base on GPU`, false, { error: String(e?.message ?? e) });
    } finally {
      await c.dispose();
      await g.dispose();
    }
  }
} catch (e) {
  report("setup", false, { error: String(e?.stack ?? e) });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(JSON.stringify({ failed }));
process.exit(failed === 0 ? 0 : 1);
