// What the trainer's LoRA weight sync costs after each update: the learner's adapter into the
// policy (native engine), through a GGUF file (`save` + `reload({ kind: "lora", path })`) or in
// memory (`exportAdapter` + `reload({ kind: "lora-bytes", bytes })`), each followed by one score
// so that the new adapter is in use. Same learner, same policy, alternating, best of BENCH_ROUNDS;
// milliseconds, one thread. Model: BENCH_DIM / BENCH_LAYERS / BENCH_VOCAB, LoRA r16 on every matrix.
// Usage (from packages/learner, after npm run build): node bench/sync.mjs
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { createTinyLlama } from "@workflow-r1/gguf";
import { createGgmlLearner } from "@workflow-r1/learner";
import { createLlamaCppPolicy } from "@workflow-r1/policy";
import { Effect } from "effect";
import { getLlama } from "node-llama-cpp";

const DIM = Number(process.env.BENCH_DIM ?? 512);
const LAYERS = Number(process.env.BENCH_LAYERS ?? 6);
const VOCAB = Number(process.env.BENCH_VOCAB ?? 2048);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);

const dir = await mkdtemp(join(tmpdir(), "wr1-sync-bench-"));
const run = (effect) => Effect.runPromise(effect);
try {
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
  const targets = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];
  const learner = createGgmlLearner({
    modelPath: model.path,
    threads: 1,
    lora: { rank: 16, alpha: 32, targets },
    optimizer: { learningRate: 1e-2 },
  });
  const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
  const policy = await createLlamaCppPolicy({
    engine: "native",
    modelPath: model.path,
    llama,
    gpu: false,
    sequences: 16,
    contextSize: 256,
    threads: 1,
  });
  const tokens = Int32Array.from({ length: 32 }, (_, i) => (i * 7) % VOCAB);
  const batch = [{ tokens, mask: Uint8Array.from(tokens, (_, i) => (i === 0 ? 0 : 1)) }];
  const adapterPath = join(dir, "policy-adapter.gguf");
  let bytes = 0;
  const syncs = {
    "file (save + reload path)": async () => {
      await run(learner.save(adapterPath, { format: "lora" }));
      await run(policy.reload({ kind: "lora", path: adapterPath }));
    },
    "memory (exportAdapter + reload bytes)": async () => {
      const adapter = await run(learner.exportAdapter());
      bytes = adapter.byteLength;
      await run(policy.reload({ kind: "lora-bytes", bytes: adapter }));
    },
  };
  const best = Object.fromEntries(Object.keys(syncs).map((k) => [k, Infinity]));
  try {
    for (let r = 0; r < ROUNDS; r++) {
      // A real update first, so that each sync carries new weights.
      await run(learner.backward(batch, [Float32Array.from(tokens, () => -1)]));
      await run(learner.step());
      for (const [name, sync] of Object.entries(syncs)) {
        const t0 = performance.now();
        await sync();
        await run(policy.score(tokens, 1));
        best[name] = Math.min(best[name], performance.now() - t0);
      }
    }
  } finally {
    await policy.dispose();
    await learner.dispose();
  }
  console.log(
    `LoRA sync: d=${DIM}, ${LAYERS} layers, vocab ${VOCAB}, r16 on ${targets.length} matrices per layer (adapter ${(bytes / 1e6).toFixed(1)} MB); ` +
      `best of ${ROUNDS}, 1 thread; CPU: ${cpus()[0]?.model} × ${cpus().length}; tmpdir ${tmpdir()}`,
  );
  console.log("| sync | ms (incl. one score) |\n| --- | --- |");
  for (const [name, ms] of Object.entries(best)) console.log(`| ${name} | ${ms.toFixed(1)} |`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
