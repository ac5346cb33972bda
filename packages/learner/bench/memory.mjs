// Device memory a training step needs, for real model shapes, without a GPU and without computing:
// the learner compiles the training graph of one micro-batch (`reserve`) and reports its work
// buffer; weights, gradients and AdamW moments follow from the parameter counts. Work buffers are
// measured at 1 and 2 layers and extrapolated linearly in the layer count (every block has the
// same shapes). Usage: node bench/memory.mjs  (env: MEMORY_TOKENS=4096, MEMORY_ROW=2048)
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTinyLlama } from "@workflow-r1/gguf";
import { convertModel, createGgmlLearner } from "@workflow-r1/learner";
import { Effect } from "effect";

const tokens = Number(process.env.MEMORY_TOKENS ?? 4096);
const row = Number(process.env.MEMORY_ROW ?? 2048);
const GB = 1024 ** 3;
// Qwen2.5 shapes (tied embeddings; createTinyLlama writes an output matrix too, counted below).
const shapes = [
  {
    name: "Qwen2.5-0.5B-shaped, full fine-tuning (F32)",
    dim: 896,
    heads: 14,
    kvHeads: 2,
    ffn: 4864,
    layers: 24,
    lora: null,
  },
  {
    name: "Qwen2.5-1.5B-shaped, LoRA r16 over BF16",
    dim: 1536,
    heads: 12,
    kvHeads: 2,
    ffn: 8960,
    layers: 28,
    lora: 16,
  },
];
const vocab = 151936;
const dir = mkdtempSync(join(tmpdir(), "wr1-memory-"));
const rows = [];
try {
  for (const s of shapes) {
    const work = [];
    let loraPerLayer = 0;
    for (const layers of [1, 2]) {
      const f32 = await createTinyLlama({
        path: join(dir, `m${layers}.gguf`),
        architecture: "qwen2",
        vocab,
        dim: s.dim,
        layers,
        heads: s.heads,
        kvHeads: s.kvHeads,
        ffn: s.ffn,
        context: row,
        seed: 1,
      });
      let path = f32.path;
      if (s.lora) {
        path = join(dir, `m${layers}-bf16.gguf`);
        convertModel(f32.path, path, "bf16");
      }
      const learner = createGgmlLearner({
        modelPath: path,
        threads: 1,
        microBatchTokens: tokens,
        ...(s.lora ? { lora: { rank: s.lora } } : {}),
      });
      try {
        work.push(
          await Effect.runPromise(learner.reserve({ rows: tokens / row, length: row, training: true })),
        );
        // LoRA parameters per layer: the difference between the 2- and 1-layer learners.
        const trainable = learner.info().trainableParameters;
        loraPerLayer = layers === 1 ? trainable : trainable - loraPerLayer;
      } finally {
        await learner.dispose();
      }
    }
    const perLayerWork = work[1] - work[0];
    const computeBytes = work[0] + perLayerWork * (s.layers - 1);
    // Parameters of the real model: tied embeddings + per layer q, o (d²), k, v (d × kv heads), FFN (3·d·ffn).
    const layerParams = 2 * s.dim * s.dim + 2 * s.dim * (s.dim / s.heads) * s.kvHeads + 3 * s.dim * s.ffn;
    const params = vocab * s.dim + s.layers * layerParams;
    const state = s.lora
      ? 2 * params + 16 * loraPerLayer * s.layers // BF16 base; LoRA weights, gradients, 2 moments (F32)
      : 16 * params; // F32 weights, gradients, 2 moments
    rows.push({
      name: s.name,
      params,
      computeBytes,
      perToken: computeBytes / tokens,
      state,
      total: state + computeBytes,
    });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`micro-batch: ${tokens / row} rows × ${row} tokens (${tokens} tokens); vocabulary ${vocab}`);
console.log(
  "| model | parameters | weights + gradients + AdamW | work buffer (1 micro-batch) | per token | total |",
);
console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
for (const r of rows)
  console.log(
    `| ${r.name} | ${(r.params / 1e9).toFixed(2)}B | ${(r.state / GB).toFixed(1)} GiB | ${(r.computeBytes / GB).toFixed(1)} GiB | ${(r.perToken / 1024 ** 2).toFixed(2)} MiB | ${(r.total / GB).toFixed(1)} GiB |`,
  );
