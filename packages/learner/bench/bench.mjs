// Forward+backward throughput of the learner on CPU (2 threads) for a ~1M and a ~20M parameter
// llama model generated on the fly. Prints a Markdown table. Usage: npm run bench -w @workflow-r1/learner
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createGgmlLearner } from "@workflow-r1/learner";
import { createTinyLlama } from "@workflow-r1/policy";
import { Effect } from "effect";

const threads = Number(process.env.BENCH_THREADS ?? 2);
const dir = mkdtempSync(join(tmpdir(), "wr1-learner-bench-"));
const models = [
  { name: "~1M", vocab: 512, dim: 128, layers: 4, heads: 4, kvHeads: 4, ffn: 384, batch: 8, length: 128 },
  { name: "~20M", vocab: 2048, dim: 512, layers: 6, heads: 8, kvHeads: 8, ffn: 1408, batch: 4, length: 128 },
];
const rows = [];
try {
  for (const m of models) {
    const info = await createTinyLlama({ path: join(dir, `${m.dim}.gguf`), context: 512, seed: 1, ...m });
    const learner = createGgmlLearner({
      modelPath: info.path,
      threads,
      microBatchTokens: m.batch * m.length,
    });
    const params = learner.info().trainableParameters;
    let s = 7;
    const rand = () => {
      s = (s * 1103515245 + 12345) % 2147483648;
      return s / 2147483648;
    };
    const batch = Array.from({ length: m.batch }, () => ({
      tokens: Int32Array.from({ length: m.length }, () => Math.floor(rand() * m.vocab)),
      mask: Uint8Array.from({ length: m.length }, (_, t) => (t === 0 ? 0 : 1)),
    }));
    const coef = batch.map((b) => Float32Array.from(b.tokens, () => rand() * 2 - 1));
    const tokens = m.batch * m.length;
    const time = async (f, reps) => {
      await f();
      const t0 = performance.now();
      for (let i = 0; i < reps; i++) await f();
      return (performance.now() - t0) / reps / 1000;
    };
    const fwd = await time(() => Effect.runPromise(learner.logprobs(batch)), 3);
    const fb = await time(() => Effect.runPromise(learner.backward(batch, coef)), 3);
    const st = await time(() => Effect.runPromise(learner.step()), 3);
    rows.push(
      `| ${m.name} (${(params / 1e6).toFixed(2)}M: d=${m.dim}, ${m.layers} layers, vocab ${m.vocab}) | ${m.batch} × ${m.length} | ${(tokens / fwd).toFixed(0)} | ${(tokens / fb).toFixed(0)} | ${(st * 1000).toFixed(1)} |`,
    );
    await learner.dispose();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(
  `threads: ${threads}; CPU: ${cpus()[0]?.model} × ${cpus().length}; load average before/after: ${loadavg()
    .map((x) => x.toFixed(2))
    .join(" ")}`,
);
console.log(
  "| model | batch (seq × tokens) | forward tokens/s | forward+backward tokens/s | AdamW step ms |",
);
console.log("| --- | --- | --- | --- | --- |");
for (const r of rows) console.log(r);
