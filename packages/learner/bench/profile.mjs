// Where the learner's time goes, op by op: a bench model computed node by node with
// `setProfiling(true)`, milliseconds per call by op type. BENCH_MODEL=21m (default: d=512, 6 layers,
// vocab 2048, 4 × 128 tokens) or default (the default run's model, 16 × 224 tokens).
// Usage (from packages/learner, after npm run build): node bench/profile.mjs [backward|forward]
// Env: BENCH_MODEL (21m), BENCH_THREADS (1), BENCH_REPS (3).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTinyLlama } from "@workflow-r1/gguf";
import { createGgmlLearner } from "@workflow-r1/learner";
import { Effect } from "effect";

const which = process.argv[2] ?? "backward";
if (which !== "backward" && which !== "forward")
  throw new Error(`usage: profile.mjs [backward|forward], got ${which}`);
const threads = Number(process.env.BENCH_THREADS ?? 1);
const reps = Number(process.env.BENCH_REPS ?? 3);
const models = {
  "21m": { vocab: 2048, dim: 512, layers: 6, heads: 8, kvHeads: 8, ffn: 1408, rows: 4, length: 128 },
  default: { vocab: 320, dim: 64, layers: 2, heads: 4, kvHeads: 2, ffn: 192, rows: 16, length: 224 },
};
const m = models[process.env.BENCH_MODEL ?? "21m"];
if (m === undefined) throw new Error(`BENCH_MODEL must be one of ${Object.keys(models).join(", ")}`);

const dir = await mkdtemp(join(tmpdir(), "wr1-profile-"));
try {
  const info = await createTinyLlama({ path: join(dir, "model.gguf"), context: 512, seed: 1, ...m });
  const learner = createGgmlLearner({ modelPath: info.path, threads, microBatchTokens: m.rows * m.length });
  const batch = Array.from({ length: m.rows }, (_, r) => ({
    tokens: Int32Array.from({ length: m.length }, (_, t) => (t * 7 + r * 13) % m.vocab),
    mask: Uint8Array.from({ length: m.length }, (_, t) => (t === 0 ? 0 : 1)),
  }));
  const coef = batch.map((b) => Float32Array.from(b.tokens, (x) => (x % 5) / 5 - 0.4));
  const call = () =>
    Effect.runPromise(which === "forward" ? learner.logprobs(batch) : learner.backward(batch, coef));
  try {
    await call(); // compile the graph outside the profile
    learner.setProfiling(true);
    for (let i = 0; i < reps; i++) await call();
    const profile = learner.takeProfile();
    const total = Object.values(profile).reduce((s, p) => s + p.seconds, 0);
    console.log(
      `${which}, ${threads} thread(s), mean of ${reps} calls: ${((total / reps) * 1000).toFixed(1)} ms`,
    );
    console.log("| op | ms per call | share | nodes |\n| --- | ---: | ---: | ---: |");
    for (const [op, p] of Object.entries(profile).sort((a, b) => b[1].seconds - a[1].seconds))
      if (p.seconds / total >= 0.001)
        console.log(
          `| ${op} | ${((p.seconds / reps) * 1000).toFixed(1)} | ${((100 * p.seconds) / total).toFixed(1)}% | ${p.count / reps} |`,
        );
  } finally {
    await learner.dispose();
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
