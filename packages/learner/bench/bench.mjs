// Forward+backward throughput of the learner on CPU (2 threads) for llama models generated on the fly
// (~1M, ~20M and the default run's tiny model), side by side with a plain PyTorch eager reference of
// the same shapes (bench/torch_reference.py) when torch is importable. Prints Markdown tables.
// Usage: npm run bench -w @workflow-r1/learner
// Env: BENCH_THREADS (2), BENCH_ROUNDS (3; best of the rounds is reported), BENCH_PYTHON
// (/usr/bin/python3), BENCH_QUICK=1 (smallest model, 1 rep, 1 round: a smoke test).
// Debian's python3-torch calls the system libblas.so.3, by default the netlib reference BLAS (one
// thread, ~5 GFLOP/s here), so its matmuls run ~35× below OpenBLAS (~190 GFLOP/s). The PyTorch table
// names the BLAS that was loaded; to compare against OpenBLAS without changing the system:
//   apt-get download libopenblas0-pthread && dpkg -x libopenblas0-pthread_*.deb /tmp/openblas
//   LD_LIBRARY_PATH=/tmp/openblas/usr/lib/x86_64-linux-gnu/openblas-pthread npm run bench -w @workflow-r1/learner
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createTinyLlama } from "@workflow-r1/gguf";
import { createGgmlLearner } from "@workflow-r1/learner";
import { Effect } from "effect";

const threads = Number(process.env.BENCH_THREADS ?? 2);
const quick = process.env.BENCH_QUICK === "1";
const reps = quick ? 1 : 3;
const rounds = Number(process.env.BENCH_ROUNDS ?? (quick ? 1 : 3));
const python = process.env.BENCH_PYTHON ?? "/usr/bin/python3";
const torchScript = fileURLToPath(new URL("./torch_reference.py", import.meta.url));

// The last row is the default run's model: defaultTrainConfig.model.tiny in
// packages/workflow-r1/src/config.ts with createTinyLlama's default vocabulary (320), on a batch of
// 16 sequences × 224 tokens. BENCH_QUICK keeps only that one, the cheapest.
const models = [
  { name: "~1M", vocab: 512, dim: 128, layers: 4, heads: 4, kvHeads: 4, ffn: 384, batch: 8, length: 128 },
  { name: "~20M", vocab: 2048, dim: 512, layers: 6, heads: 8, kvHeads: 8, ffn: 1408, batch: 4, length: 128 },
  { name: "default", vocab: 320, dim: 64, layers: 2, heads: 4, kvHeads: 2, ffn: 192, batch: 16, length: 224 },
].filter((m) => !quick || m.name === "default");

const torchCheck = spawnSync(python, ["-c", "import torch; print(torch.__version__)"], { encoding: "utf8" });
const torchVersion = torchCheck.status === 0 ? torchCheck.stdout.trim() : null;

/** Mean seconds per call of `f` over `reps` calls, after one warm-up call. */
const time = async (f) => {
  await f();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) await f();
  return (performance.now() - t0) / reps / 1000;
};

/** One ggml measurement: tokens/s of logprobs and backward, ms of step. */
const measureGgml = async (learner, batch, coef, tokens) => {
  const fwd = await time(() => Effect.runPromise(learner.logprobs(batch)));
  const fb = await time(() => Effect.runPromise(learner.backward(batch, coef)));
  const st = await time(() => Effect.runPromise(learner.step()));
  return { fwd: tokens / fwd, fb: tokens / fb, stepMs: st * 1000 };
};

/** One PyTorch measurement in a fresh process (same shapes, batch and threads; random weights and tokens). */
const measureTorch = (m) => {
  const { name, ...shape } = m;
  const spec = { ...shape, threads, reps };
  // torch.set_num_threads does not reach a BLAS linked as a plain libblas.so.3 (OpenBLAS has its own pool).
  const threadEnv = {
    OMP_NUM_THREADS: `${threads}`,
    OPENBLAS_NUM_THREADS: `${threads}`,
    MKL_NUM_THREADS: `${threads}`,
  };
  const r = spawnSync(python, [torchScript, JSON.stringify(spec)], {
    env: { ...process.env, ...threadEnv },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  if (r.status !== 0)
    throw new Error(`${python} ${torchScript} failed (${r.status ?? r.signal}) for ${name}`);
  const out = JSON.parse(r.stdout.trim().split("\n").at(-1));
  return {
    fwd: out.forwardTokensPerSecond,
    fb: out.forwardBackwardTokensPerSecond,
    stepMs: out.stepMs,
    parameters: out.parameters,
    blas: out.blas,
  };
};

/** Best of the rounds: the least disturbed measurement on a shared machine. */
const best = (ms) => ({
  fwd: Math.max(...ms.map((x) => x.fwd)),
  fb: Math.max(...ms.map((x) => x.fb)),
  stepMs: Math.min(...ms.map((x) => x.stepMs)),
});

const dir = mkdtempSync(join(tmpdir(), "wr1-learner-bench-"));
const results = [];
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
    // Alternate the two so that a burst of load from other jobs hits both rather than one.
    const ggmlRuns = [];
    const torchRuns = [];
    for (let round = 0; round < rounds; round++) {
      ggmlRuns.push(await measureGgml(learner, batch, coef, tokens));
      if (torchVersion) torchRuns.push(measureTorch(m));
    }
    await learner.dispose();
    // Same parameter count = same shapes (a cheap guard against the two models drifting apart).
    const torchParams = torchRuns[0]?.parameters;
    if (torchParams !== undefined && torchParams !== params)
      console.warn(`warning: ${m.name}: ggml has ${params} trainable parameters, PyTorch ${torchParams}`);
    const torch = torchVersion ? { ...best(torchRuns), blas: torchRuns[0].blas } : null;
    results.push({ m, params, ggml: best(ggmlRuns), torch });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const label = (m, params) =>
  `${m.name} (${(params / 1e6).toFixed(2)}M: d=${m.dim}, ${m.layers} layers, vocab ${m.vocab})`;
const shape = (m) => `${m.batch} × ${m.length}`;

console.log(
  `threads: ${threads}; rounds: ${rounds} (best of), reps: ${reps}; CPU: ${cpus()[0]?.model} × ${cpus().length}; load average after: ${loadavg()
    .map((x) => x.toFixed(2))
    .join(" ")}`,
);
console.log(
  "| model | batch (seq × tokens) | forward tokens/s | forward+backward tokens/s | AdamW step ms |",
);
console.log("| --- | --- | --- | --- | --- |");
for (const { m, params, ggml } of results) {
  console.log(
    `| ${label(m, params)} | ${shape(m)} | ${ggml.fwd.toFixed(0)} | ${ggml.fb.toFixed(0)} | ${ggml.stepMs.toFixed(1)} |`,
  );
}

console.log("");
if (!torchVersion) {
  console.log(
    `PyTorch comparison skipped: \`${python} -c "import torch"\` failed (set BENCH_PYTHON to an interpreter with torch).`,
  );
} else {
  console.log(
    `PyTorch ${torchVersion} (eager, float32, ${threads} threads; BLAS: ${results[0]?.torch.blas ?? "unknown"}), same shapes, batch and threads:`,
  );
  console.log(
    "| model | batch | ggml fwd tok/s | torch fwd tok/s | ggml fwd+bwd tok/s | torch fwd+bwd tok/s | fwd+bwd ratio (ggml/torch) | ggml step ms | torch step ms |",
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const { m, params, ggml, torch } of results) {
    console.log(
      `| ${label(m, params)} | ${shape(m)} | ${ggml.fwd.toFixed(0)} | ${torch.fwd.toFixed(0)} | ${ggml.fb.toFixed(0)} | ${torch.fb.toFixed(0)} | ${(ggml.fb / torch.fb).toFixed(2)} | ${ggml.stepMs.toFixed(1)} | ${torch.stepMs.toFixed(1)} |`,
    );
  }
}
