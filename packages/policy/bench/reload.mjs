// What a weight sync costs the policy between training steps, on both engines, for a model of the
// size the bench uses (BENCH_DIM / BENCH_LAYERS / BENCH_VOCAB): a LoRA reload (the native engine
// swaps the adapter on its live context; the node-llama-cpp engine opens a new context on the same
// model from a copy of the file) and a full-weights reload (a new model and context on both).
// Best of BENCH_ROUNDS alternating rounds, milliseconds, one thread.
// Usage (from packages/policy): npm run build && node bench/reload.mjs
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { createLoraAdapter, createTinyLlama } from "@workflow-r1/gguf";
import { createLlamaCppPolicy } from "@workflow-r1/policy";
import { Effect } from "effect";
import { getLlama } from "node-llama-cpp";

const DIM = Number(process.env.BENCH_DIM ?? 256);
const LAYERS = Number(process.env.BENCH_LAYERS ?? 4);
const VOCAB = Number(process.env.BENCH_VOCAB ?? 512);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const SEQUENCES = Number(process.env.BENCH_SEQUENCES ?? 64);

const dir = await mkdtemp(join(tmpdir(), "wr1-reload-bench-"));
const model = await createTinyLlama({
  path: join(dir, "base.gguf"),
  vocab: VOCAB,
  dim: DIM,
  layers: LAYERS,
  heads: Math.max(1, DIM / 64),
  kvHeads: Math.max(1, DIM / 128),
  ffn: DIM * 3,
  seed: 1,
});
const adapter = await createLoraAdapter({
  base: model.file,
  rank: 16,
  alpha: 32,
  targets: ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_up", "ffn_down", "ffn_gate"],
  seed: 2,
  path: join(dir, "adapter.gguf"),
});
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const tokens = Int32Array.from({ length: 32 }, (_, i) => (i * 7) % VOCAB);

const time = async (f) => {
  const t0 = performance.now();
  await f();
  return performance.now() - t0;
};

const measure = async (engine) => {
  const policy = await createLlamaCppPolicy({
    engine,
    modelPath: model.path,
    llama,
    gpu: false,
    sequences: SEQUENCES,
    contextSize: 256,
    threads: 1,
  });
  try {
    // A reload must leave a working policy: score once after each.
    const lora = await time(async () => {
      await Effect.runPromise(policy.reload({ kind: "lora", path: adapter.path, scale: 1 }));
      await Effect.runPromise(policy.score(tokens, 1));
    });
    const full = await time(async () => {
      await Effect.runPromise(policy.reload({ kind: "gguf", path: model.path }));
      await Effect.runPromise(policy.score(tokens, 1));
    });
    return { lora, full };
  } finally {
    await policy.dispose();
  }
};

const best = {
  native: { lora: Infinity, full: Infinity },
  "node-llama-cpp": { lora: Infinity, full: Infinity },
};
for (let r = 0; r < ROUNDS; r++)
  for (const engine of ["native", "node-llama-cpp"]) {
    const m = await measure(engine);
    best[engine].lora = Math.min(best[engine].lora, m.lora);
    best[engine].full = Math.min(best[engine].full, m.full);
  }
console.log(
  `model d${DIM} × ${LAYERS} layers, vocab ${VOCAB}, ${SEQUENCES} sequences; LoRA r16 on every projection; ms (best of ${ROUNDS}, each followed by one score)`,
);
console.log("| engine | LoRA reload | full-weights reload |");
console.log("| --- | ---: | ---: |");
for (const [engine, m] of Object.entries(best))
  console.log(`| ${engine} | ${m.lora.toFixed(1)} | ${m.full.toFixed(1)} |`);
console.log(
  JSON.stringify({ model: { dim: DIM, layers: LAYERS, vocab: VOCAB }, cpu: cpus()[0]?.model, best }),
);
await rm(dir, { recursive: true, force: true });
