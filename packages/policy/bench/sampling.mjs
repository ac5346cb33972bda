// Sampling throughput of LlamaCppPolicy against llama.cpp's raw batched decode (the ceiling) on a
// tiny model, for 1, 4, 16 and 64 parallel sequences, in one run. Usage (from packages/policy):
//   npm run build && npm run bench            (BENCH_TOKENS, BENCH_DIM, BENCH_LAYERS, BENCH_THREADS override)
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { createLlamaCppPolicy, createTinyLlama } from "@workflow-r1/policy";
import { Effect } from "effect";
import { getLlama } from "node-llama-cpp";

const TOKENS = Number(process.env.BENCH_TOKENS ?? 64);
// One thread by default: on a busy 2-core machine llama.cpp's thread barrier makes 2 threads ~15× slower for tiny models.
const THREADS = Number(process.env.BENCH_THREADS ?? 1);
const DIM = Number(process.env.BENCH_DIM ?? 256);
const LAYERS = Number(process.env.BENCH_LAYERS ?? 4);
const VOCAB = Number(process.env.BENCH_VOCAB ?? 512);
const PARALLEL = (process.env.BENCH_PARALLEL ?? "1,4,16,64").split(",").map(Number);
const PROMPT = 8;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

const dir = await mkdtemp(join(tmpdir(), "wr1-bench-"));
const model = await createTinyLlama({
  path: join(dir, "bench.gguf"),
  vocab: VOCAB,
  dim: DIM,
  layers: LAYERS,
  heads: 8,
  kvHeads: 4,
  ffn: DIM * 3,
  seed: 1,
});
const llama = await getLlama({ gpu: false, build: "never", logLevel: process.env.BENCH_LOG ?? "error" });
/** CPU seconds (all threads of this process) since `c0`: robust to other jobs sharing the cores. */
const cpuSeconds = (c0) => {
  const d = process.cpuUsage(c0);
  return (d.user + d.system) / 1e6;
};
const prompts = (n) =>
  Array.from({ length: n }, (_, i) => Int32Array.from({ length: PROMPT }, (_, j) => (i * 31 + j * 7) % 256));

/** The Policy: N fibers, each opening a sequence and sampling TOKENS tokens (no stop, EOS ignored by bias-free luck → counted). */
const runPolicy = async (n) => {
  const policy = await createLlamaCppPolicy({
    modelPath: model.path,
    llama,
    gpu: false,
    sequences: n,
    contextSize: 256,
    threads: THREADS,
  });
  try {
    const once = () =>
      Effect.runPromise(
        Effect.all(
          prompts(n).map((p, i) =>
            Effect.scoped(
              Effect.flatMap(policy.openSequence(p), (s) =>
                s.generate(new Int32Array(0), { maxTokens: TOKENS, seed: i }),
              ),
            ),
          ),
          { concurrency: "unbounded" },
        ),
      );
    await once(); // warm-up
    const d0 = policy.decodeCalls();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const gens = await once();
    const s = (performance.now() - t0) / 1000;
    const cpu = cpuSeconds(c0);
    const sampled = gens.reduce((a, g) => a + g.tokens.length, 0);
    return {
      tokens: sampled,
      seconds: s,
      tps: sampled / s,
      cpuTps: sampled / cpu,
      decodes: policy.decodeCalls() - d0,
    };
  } finally {
    await policy.dispose();
  }
};

/** The ceiling: node-llama-cpp's lowest-level batched API (initBatch / addToBatch / decodeBatch / sampleToken). */
const runRaw = async (n) => {
  const m = await llama.loadModel({ modelPath: model.path });
  const context = await m.createContext({
    contextSize: 256,
    sequences: n,
    threads: THREADS,
    batchSize: Math.max(512, n),
    flashAttention: false,
  });
  try {
    const seqs = Array.from({ length: n }, () => context.getSequence());
    const ctx = context._ctx;
    const samplers = seqs.map((seq, i) => {
      const s = new llama._bindings.AddonSampler(m._model);
      s.applyConfig(seq._resolveSamplerConfig({ temperature: 1, topK: 0, topP: 1, minP: 0, seed: i }));
      return s;
    });
    const once = async () => {
      for (const seq of seqs) ctx.disposeSequence(seq._sequenceId); // clears its KV cells
      const ps = prompts(n);
      ctx.initBatch(n * PROMPT);
      const idx = seqs.map(
        (seq, i) =>
          ctx.addToBatch(seq._sequenceId, 0, Uint32Array.from(ps[i]), Uint32Array.from([PROMPT - 1]))[0],
      );
      await ctx.decodeBatch();
      let last = await Promise.all(idx.map((li, i) => ctx.sampleToken(li, samplers[i], false, true)));
      let sampled = n;
      for (let step = 1; step < TOKENS; step++) {
        ctx.initBatch(n);
        const li = seqs.map(
          (seq, i) =>
            ctx.addToBatch(
              seq._sequenceId,
              PROMPT + step - 1,
              Uint32Array.from([last[i][0]]),
              Uint32Array.from([0]),
            )[0],
        );
        await ctx.decodeBatch();
        last = await Promise.all(li.map((l, i) => ctx.sampleToken(l, samplers[i], false, true)));
        sampled += n;
      }
      return sampled;
    };
    await once();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const sampled = await once();
    const s = (performance.now() - t0) / 1000;
    const cpu = cpuSeconds(c0);
    for (const s2 of samplers) s2.dispose();
    return { tokens: sampled, seconds: s, tps: sampled / s, cpuTps: sampled / cpu };
  } finally {
    await context.dispose();
    await m.dispose();
  }
};

const rows = [];
for (const n of PARALLEL) {
  // Alternate the two measurements and keep each one's best of ROUNDS, so background load on a shared
  // machine hits both alike.
  let raw = { tps: 0, cpuTps: 0 };
  let pol = { tps: 0, cpuTps: 0 };
  for (let r = 0; r < ROUNDS; r++) {
    const a = await runPolicy(n);
    const b = await runRaw(n);
    pol = { tps: Math.max(pol.tps, a.tps), cpuTps: Math.max(pol.cpuTps, a.cpuTps), decodes: a.decodes };
    raw = { tps: Math.max(raw.tps, b.tps), cpuTps: Math.max(raw.cpuTps, b.cpuTps) };
  }
  const row = {
    n,
    policy: pol.tps,
    raw: raw.tps,
    ratio: pol.tps / raw.tps,
    policyCpu: pol.cpuTps,
    rawCpu: raw.cpuTps,
    cpuRatio: pol.cpuTps / raw.cpuTps,
  };
  rows.push(row);
  console.log(
    `${String(n).padStart(3)} sequences: wall policy ${pol.tps.toFixed(0).padStart(6)} / raw ${raw.tps.toFixed(0).padStart(6)} tok/s = ${row.ratio.toFixed(2)}; ` +
      `per CPU-second policy ${pol.cpuTps.toFixed(0).padStart(6)} / raw ${raw.cpuTps.toFixed(0).padStart(6)} = ${row.cpuRatio.toFixed(2)} (${pol.decodes} decodes for ${TOKENS} steps)`,
  );
}
console.log(
  JSON.stringify({
    model: { dim: DIM, layers: LAYERS, vocab: VOCAB },
    tokensPerSequence: TOKENS,
    threads: THREADS,
    cpu: cpus()[0]?.model,
    rows,
  }),
);
await rm(dir, { recursive: true, force: true });
