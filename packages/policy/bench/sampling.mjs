// Sampling throughput of LlamaCppPolicy on a tiny model, for 1, 4, 16 and 64 parallel sequences,
// in one run, on both of its engines (the native decode loop, its default, and node-llama-cpp's
// batched context API), against:
//   - node-llama-cpp's raw batched decode (initBatch / addToBatch / decodeBatch / sampleToken);
//   - llama.cpp's own C++ engine: `llama-batched-bench` (decode throughput S_TG, no sampling),
//     built from the bundled llama.cpp source by tools/build-llama-server.sh;
//   - HttpPolicy over one local `llama-server` (the other engine), same model, slots = sequences.
// The C++ and HTTP columns are skipped (with a note) when the binaries are missing.
// Usage (from packages/policy): npm run build && npm run bench
//   (BENCH_TOKENS, BENCH_DIM, BENCH_LAYERS, BENCH_HEADS, BENCH_THREADS, BENCH_PARALLEL, BENCH_ROUNDS override)
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createTinyLlama, writeGguf } from "@workflow-r1/gguf";
import { createLlamaCppPolicy, HttpPolicy } from "@workflow-r1/policy";
import { Effect } from "effect";
import { getLlama } from "node-llama-cpp";

const TOKENS = Number(process.env.BENCH_TOKENS ?? 64);
// One thread by default: on a busy 2-core machine llama.cpp's thread barrier makes 2 threads ~15× slower for tiny models.
const THREADS = Number(process.env.BENCH_THREADS ?? 1);
const DIM = Number(process.env.BENCH_DIM ?? 256);
const LAYERS = Number(process.env.BENCH_LAYERS ?? 4);
const VOCAB = Number(process.env.BENCH_VOCAB ?? 512);
// Attention heads: 4 by default, so a head is 64 wide as in real models (Qwen2.5: 64, Llama: 128).
// With 32-wide heads, node-llama-cpp's AVX-512 CPU builds run attention's F16 dot products in their
// scalar tail loop (the SIMD loop steps 64 halves), which a locally built AVX2 llama.cpp does not:
// the comparison would measure that artifact, not the engines (see BENCHMARKS.md).
const HEADS = Number(process.env.BENCH_HEADS ?? 4);
const PARALLEL = (process.env.BENCH_PARALLEL ?? "1,4,16,64").split(",").map(Number);
const PROMPT = 8;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
const batchedBenchBin = join(repoRoot, ".cache/llama-server/bin/llama-batched-bench");
const serverBin = join(repoRoot, ".cache/llama-server/bin/llama-server");
const haveCpp = existsSync(batchedBenchBin);
const haveServer = existsSync(serverBin);

const dir = await mkdtemp(join(tmpdir(), "wr1-bench-"));
const tiny = await createTinyLlama({
  path: join(dir, "tiny.gguf"),
  vocab: VOCAB,
  dim: DIM,
  layers: LAYERS,
  heads: HEADS,
  kvHeads: Math.max(1, HEADS / 2),
  ffn: DIM * 3,
  seed: 1,
});
// Every engine must decode the same steps: llama-batched-bench never ends a sequence, the others
// end one at an end-of-generation token, which a random model samples now and then (a quarter of
// 64-token sequences ended early). So the bench model's output rows for the special tokens are
// zero and every other row is scaled by 12: their logits spread far above 0, an end-of-generation
// token's probability falls below e^-30, and sequences run to maxTokens. The compute per token is
// unchanged (same shapes, same full-vocabulary softmax).
const model = { path: join(dir, "bench.gguf") };
{
  const special = new Set(Object.values(tiny.specialTokens));
  const tensors = tiny.file.tensors.map((t) => {
    if (t.name !== "output.weight") return t;
    const data = Float32Array.from(t.data, (v, i) => (special.has(Math.floor(i / DIM)) ? 0 : v * 12));
    return { ...t, data };
  });
  await writeGguf(model.path, { ...tiny.file, tensors });
}
/** The bench model should never end a sequence early; say so if an engine did anyway. */
const warnIfShort = (engine, n, sampled) => {
  if (sampled < n * TOKENS)
    console.log(`warning: ${engine} sampled ${sampled} of ${n * TOKENS} tokens (a sequence ended early)`);
};
const llama = await getLlama({ gpu: false, build: "never", logLevel: process.env.BENCH_LOG ?? "error" });
const prompts = (n) =>
  Array.from({ length: n }, (_, i) => Int32Array.from({ length: PROMPT }, (_, j) => (i * 31 + j * 7) % 256));

/** The Policy on one engine: N fibers, each opening a sequence and sampling TOKENS tokens. */
const runPolicy = async (n, engine) => {
  const policy = await createLlamaCppPolicy({
    engine,
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
    const t0 = performance.now();
    const gens = await once();
    const s = (performance.now() - t0) / 1000;
    const sampled = gens.reduce((a, g) => a + g.tokens.length, 0);
    warnIfShort(`policy (${engine})`, n, sampled);
    return { tps: sampled / s, decodes: policy.decodeCalls() - d0 };
  } finally {
    await policy.dispose();
  }
};

/** node-llama-cpp's lowest-level batched API (initBatch / addToBatch / decodeBatch / sampleToken), ending sequences at end-of-generation. */
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
      // Like the policy and the native loop, a sequence ends at its end-of-generation token: all
      // three then decode the same shrinking batches (llama-batched-bench never stops one).
      let live = seqs.map((_, i) => i).filter((i) => !m.isEogToken(last[i][0]));
      const tokens = last.map((t) => t[0]);
      for (let step = 1; step < TOKENS && live.length > 0; step++) {
        ctx.initBatch(live.length);
        const li = live.map(
          (i) =>
            ctx.addToBatch(
              seqs[i]._sequenceId,
              PROMPT + step - 1,
              Uint32Array.from([tokens[i]]),
              Uint32Array.from([0]),
            )[0],
        );
        await ctx.decodeBatch();
        last = await Promise.all(li.map((l, k) => ctx.sampleToken(l, samplers[live[k]], false, true)));
        live.forEach((i, k) => {
          tokens[i] = last[k][0];
        });
        sampled += live.length;
        live = live.filter((i) => !m.isEogToken(tokens[i]));
      }
      return sampled;
    };
    await once();
    const t0 = performance.now();
    const sampled = await once();
    const s = (performance.now() - t0) / 1000;
    for (const s2 of samplers) s2.dispose();
    return { tps: sampled / s };
  } finally {
    await context.dispose();
    await m.dispose();
  }
};

/** llama.cpp's C++ ceiling: llama-batched-bench's text-generation speed for n sequences. */
const runCpp = (n) => {
  const r = spawnSync(
    batchedBenchBin,
    [
      ...["-m", model.path, "-c", String(n * (PROMPT + TOKENS) + 64), "-b", "2048", "-ub", "512"],
      ...["-npp", String(PROMPT), "-ntg", String(TOKENS), "-npl", String(n)],
      ...["-t", String(THREADS), "-tb", String(THREADS), "-fa", "off", "--output-format", "jsonl"],
    ],
    { encoding: "utf8" },
  );
  const line = `${r.stdout}\n${r.stderr}`
    .split("\n")
    .find((l) => l.startsWith("{") && l.includes("speed_tg"));
  if (r.status !== 0 || line === undefined)
    throw new Error(`llama-batched-bench failed (${r.status}): ${r.stderr.slice(-2000)}`);
  return { tps: JSON.parse(line).speed_tg };
};

const freePort = () =>
  new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });

/** HttpPolicy over one local llama-server with n slots: the same fibers as runPolicy. */
const runHttp = async (n) => {
  const port = await freePort();
  const child = spawn(
    serverBin,
    [
      ...["-m", model.path, "--host", "127.0.0.1", "--port", String(port), "-np", String(n)],
      ...["-c", String(n * 256), "-t", String(THREADS), "-tb", String(THREADS), "-fa", "off"],
      "--no-webui",
    ],
    { stdio: "ignore" },
  );
  try {
    const url = `http://127.0.0.1:${port}`;
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`${url}/health`)).ok) break;
      } catch {
        // not listening yet
      }
      if (i > 600) throw new Error("llama-server did not become healthy in 60 s");
      await new Promise((r) => setTimeout(r, 100));
    }
    return await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const policy = yield* HttpPolicy.make({ urls: [url], tokenizerModelPath: model.path });
          const once = () =>
            Effect.all(
              prompts(n).map((p, i) =>
                Effect.scoped(
                  Effect.flatMap(policy.openSequence(p), (seq) =>
                    seq.generate(new Int32Array(0), { maxTokens: TOKENS, seed: i }),
                  ),
                ),
              ),
              { concurrency: "unbounded" },
            );
          yield* once(); // warm-up
          const t0 = performance.now();
          const gens = yield* once();
          const s = (performance.now() - t0) / 1000;
          const sampled = gens.reduce((a, g) => a + g.tokens.length, 0);
          return { tps: sampled / s };
        }),
      ),
    );
  } finally {
    child.kill("SIGKILL");
  }
};

if (!haveCpp || !haveServer)
  console.log(
    `note: ${!haveCpp ? "llama-batched-bench" : "llama-server"} missing in .cache/llama-server/bin (tools/build-llama-server.sh builds both): those columns are skipped`,
  );

const rows = [];
for (const n of PARALLEL) {
  // Alternate the measurements and keep each one's best of ROUNDS, so background load on a shared
  // machine hits all alike.
  const best = { policy: 0, nodeEngine: 0, raw: 0, cpp: 0, http: 0 };
  let decodes = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const a = await runPolicy(n, "native");
    best.policy = Math.max(best.policy, a.tps);
    decodes = a.decodes;
    best.nodeEngine = Math.max(best.nodeEngine, (await runPolicy(n, "node-llama-cpp")).tps);
    best.raw = Math.max(best.raw, (await runRaw(n)).tps);
    if (haveCpp) best.cpp = Math.max(best.cpp, runCpp(n).tps);
    if (haveServer) best.http = Math.max(best.http, (await runHttp(n)).tps);
  }
  const row = {
    n,
    policy: best.policy,
    policyNodeEngine: best.nodeEngine,
    raw: best.raw,
    cpp: haveCpp ? best.cpp : null,
    http: haveServer ? best.http : null,
    ratioToCpp: haveCpp ? best.policy / best.cpp : null,
    ratioToRaw: best.policy / best.raw,
  };
  rows.push(row);
  console.log(
    `${String(n).padStart(3)} sequences: policy ${best.policy.toFixed(0)} tok/s (${decodes} decodes for ${TOKENS} steps), ` +
      `node-llama-cpp engine ${best.nodeEngine.toFixed(0)}, raw node-llama-cpp ${best.raw.toFixed(0)}` +
      (haveCpp
        ? `, llama-batched-bench ${best.cpp.toFixed(0)} (policy/C++ ${row.ratioToCpp.toFixed(2)})`
        : "") +
      (haveServer ? `, HttpPolicy ${best.http.toFixed(0)}` : ""),
  );
}
console.log(
  "\n| sequences | policy (native engine) | policy (node-llama-cpp engine) | node-llama-cpp raw | llama-batched-bench (C++) | HttpPolicy (llama-server) | policy / C++ | policy / raw |",
);
console.log("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
const fmt = (x) => (x === null ? "–" : Math.round(x).toLocaleString("en-US"));
const ratio = (x) => (x === null ? "–" : x.toFixed(2));
for (const r of rows)
  console.log(
    `| ${r.n} | ${fmt(r.policy)} | ${fmt(r.policyNodeEngine)} | ${fmt(r.raw)} | ${fmt(r.cpp)} | ${fmt(r.http)} | ${ratio(r.ratioToCpp)} | ${ratio(r.ratioToRaw)} |`,
  );
console.log(
  JSON.stringify({
    model: { dim: DIM, layers: LAYERS, heads: HEADS, vocab: VOCAB },
    tokensPerSequence: TOKENS,
    threads: THREADS,
    cpu: cpus()[0]?.model,
    rows,
  }),
);
await rm(dir, { recursive: true, force: true });
