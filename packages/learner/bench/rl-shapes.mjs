// The learner under an RL update's call pattern, where batch shapes change from step to step: per
// step, 40 sequences of random lengths (120–319 tokens) → logprobs of all (old), logprobs of all
// (as a reference model would), then 4 mini-batches of 10: logprobs (not before the first),
// backward, AdamW step. The default run's model (d=64, 2 layers, vocab 320), 2 threads,
// microBatchTokens 8192, 8 steps; prints the wall time of each of BENCH_ROUNDS rounds (new learner
// each round, same sequences) and the graphs compiled.
// Usage (from packages/learner, after npm run build): node bench/rl-shapes.mjs
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { createTinyLlama } from "@workflow-r1/gguf";
import { createGgmlLearner } from "@workflow-r1/learner";
import { Effect } from "effect";

const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const steps = 8;
const run = (effect) => Effect.runPromise(effect);

const dir = await mkdtemp(join(tmpdir(), "wr1-rl-shapes-"));
try {
  const vocab = 320;
  const model = await createTinyLlama({
    path: join(dir, "model.gguf"),
    context: 512,
    seed: 1,
    vocab,
    dim: 64,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    ffn: 192,
  });
  let s = 3;
  const rand = () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
  const batches = Array.from({ length: steps }, () =>
    Array.from({ length: 40 }, () => {
      const length = 120 + Math.floor(rand() * 200);
      return {
        tokens: Int32Array.from({ length }, () => Math.floor(rand() * vocab)),
        mask: Uint8Array.from({ length }, (_, t) => (t > 60 ? 1 : 0)),
      };
    }),
  );
  const seconds = [];
  for (let r = 0; r < rounds; r++) {
    const learner = createGgmlLearner({ modelPath: model.path, threads: 2, microBatchTokens: 8192 });
    try {
      const t0 = performance.now();
      for (const sequences of batches) {
        await run(learner.logprobs(sequences));
        await run(learner.logprobs(sequences));
        for (let k = 0; k < 4; k++) {
          const miniBatch = sequences.slice(k * 10, k * 10 + 10);
          if (k > 0) await run(learner.logprobs(miniBatch));
          await run(
            learner.backward(
              miniBatch,
              miniBatch.map((q) => Float32Array.from(q.tokens, () => 0.01)),
            ),
          );
          await run(learner.step());
        }
      }
      seconds.push((performance.now() - t0) / 1000);
    } finally {
      await learner.dispose();
    }
  }
  console.log(
    `RL-shaped update, ${steps} steps × 40 sequences, default run's model, 2 threads; CPU: ${cpus()[0]?.model} × ${cpus().length}`,
  );
  console.log(
    `wall s per round: ${seconds.map((x) => x.toFixed(2)).join(", ")} (best ${Math.min(...seconds).toFixed(2)})`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
