// `workflow-r1 eval` (the CLI in a child process) against the library called directly in this
// process, on the same questions, model and settings: issue 17 asks that the CLI stay within 2× of
// the library. Three ways are timed, each end to end (loading the model included), best of
// `rounds`, alternating so that a busy neighbour on a shared machine hits all of them alike:
//
// - library: `evaluate()` with a `LlamaCppPolicy.layer` given threads = the available cores, the
//   way a program embedding the runner calls it;
// - runEvalCommand: the CLI's own function, in process (its default services);
// - CLI: `node packages/workflow-r1/dist/cli.js eval …`, Node start-up included;
// - CLI --threads 4 (only with OLD_DEFAULT=1): node-llama-cpp's default on a CPU-only machine
//   with fewer than 4 cores, which is what the CLI used before it had --threads.
//
// The model is a tiny generated GGUF (random weights), the questions the first N of Bamboogle in
// /work/shared/data/qa (read in place), `--method direct` (greedy, at most 512 tokens each).
// Build first (`npx tsc -b packages/eval packages/workflow-r1`), then:
//   node packages/eval/bench/cli-vs-library.mjs [questions=4] [rounds=3]
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Writable } from "node:stream";
import { evaluate, loadEvalBenchmarks, runEvalCommand } from "@workflow-r1/eval";
import { createTinyLlama } from "@workflow-r1/gguf";
import { LlamaCppPolicy } from "@workflow-r1/policy";
import { Effect } from "effect";

const questions = Number(process.argv[2] ?? 4);
const rounds = Number(process.argv[3] ?? 3);
const data = process.env.QA_DATA ?? resolve(import.meta.dirname, "../../../../shared/data/qa");
const cli = resolve(import.meta.dirname, "../../workflow-r1/dist/cli.js");
const cores = availableParallelism();
const dir = mkdtempSync(join(tmpdir(), "eval-cli-bench-"));
const { path: model } = await createTinyLlama({
  path: join(dir, "tiny.gguf"),
  vocab: 2048,
  dim: 256,
  layers: 4,
  heads: 8,
  kvHeads: 4,
  ffn: 768,
  seed: 1,
});
const quiet = new Writable({ write: (_chunk, _encoding, done) => done() });
const seconds = (t0) => (performance.now() - t0) / 1000;
let answers = 0;

const library = async () => {
  const t0 = performance.now();
  const benchmarks = await Effect.runPromise(loadEvalBenchmarks(data, ["bamboogle"]));
  const run = await Effect.runPromise(
    evaluate({ benchmarks, method: "direct", limit: questions }).pipe(
      Effect.provide(
        LlamaCppPolicy.layer({ modelPath: model, sequences: 4, contextSize: 2048, threads: cores }),
      ),
    ),
  );
  answers = run.results.reduce((a, r) => a + r.tokens, 0);
  return seconds(t0);
};

let outs = 0;
const command = async () => {
  const t0 = performance.now();
  await runEvalCommand({
    data,
    benchmarks: "bamboogle",
    method: "direct",
    model,
    limit: questions,
    out: join(dir, `out${outs++}`),
    progress: "none",
    stream: quiet,
  });
  return seconds(t0);
};

const viaCli = (extra) => () => {
  const t0 = performance.now();
  const r = spawnSync(
    process.execPath,
    [cli, "eval", "--data", data, "--benchmarks", "bamboogle", "--method", "direct", "--model", model]
      .concat(["--limit", String(questions), "--out", join(dir, `out${outs++}`)])
      .concat(extra),
    { encoding: "utf8", env: { ...process.env, CI: "1" } },
  );
  if (r.status !== 0) throw new Error(`the CLI failed (${r.status}): ${r.stderr}`);
  return seconds(t0);
};

const ways = { library, runEvalCommand: command, cli: viaCli([]) };
if (process.env.OLD_DEFAULT === "1") ways["cli --threads 4"] = viaCli(["--threads", "4"]);
const times = Object.fromEntries(Object.keys(ways).map((k) => [k, []]));
for (let round = 0; round < rounds; round++)
  for (const [name, way] of Object.entries(ways)) {
    times[name].push(await way());
    if (process.env.VERBOSE === "1")
      console.error(`round ${round} ${name}: ${times[name].at(-1).toFixed(2)} s`);
  }

const best = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, Math.min(...v)]));
console.log(
  JSON.stringify(
    {
      questions,
      rounds,
      sampledTokens: answers,
      cores,
      cpu: cpus()[0]?.model,
      node: process.version,
      bestSeconds: Object.fromEntries(Object.entries(best).map(([k, v]) => [k, +v.toFixed(2)])),
      allSeconds: Object.fromEntries(Object.entries(times).map(([k, v]) => [k, v.map((x) => +x.toFixed(2))])),
      cliOverLibrary: +(best.cli / best.library).toFixed(2),
    },
    null,
    2,
  ),
);
const ratio = best.cli / best.library;
console.log(
  `CLI / library (best of ${rounds}): ${ratio.toFixed(2)}× — target ≤ 2×: ${ratio <= 2 ? "met" : "NOT met"}`,
);
rmSync(dir, { recursive: true, force: true });
