// I/O benchmarks for env-qa: dataset loading, BM25 indexing and search, HTTP executor overhead.
// Run after a build: `npx tsc -b && node bench/io.mjs` (imports the built package by name).
import { createServer } from "node:http";
import path from "node:path";
import { Executor } from "@workflow-r1/core";
import { HttpExecutor, loadBenchmarks, loadFlashRagJsonl, makeBm25Retriever } from "@workflow-r1/env-qa";
import { Effect } from "effect";

const dataDir = path.resolve(import.meta.dirname, "../../../../shared/data/qa");
const ms = (t0) => performance.now() - t0;
const fmt = (n) => Math.round(n).toLocaleString("en-US");

// 1. Dataset loading: the largest file, line by line with Schema validation.
{
  const file = path.join(dataDir, "2wikimultihopqa/dev.primary_only.jsonl");
  const t0 = performance.now();
  const tasks = await Effect.runPromise(loadFlashRagJsonl(file));
  const t = ms(t0);
  console.log(
    `loadFlashRagJsonl 2wiki dev (${fmt(tasks.length)} rows): ${t.toFixed(0)} ms, ${fmt(tasks.length / (t / 1000))} rows/s`,
  );
}

// 2. BM25: index every question of the QA files as a passage, then search with 1,000 of them.
{
  const t0 = performance.now();
  const benchmarks = await Effect.runPromise(loadBenchmarks(dataDir));
  const docs = benchmarks.flatMap((b) =>
    b.tasks.map((t) => ({ id: `${b.name}/${t.id}`, contents: `"${b.name}"\n${t.question}` })),
  );
  const tLoad = ms(t0);
  const t1 = performance.now();
  const retriever = makeBm25Retriever(docs);
  const tIndex = ms(t1);
  const queries = docs.filter((_, i) => i % Math.floor(docs.length / 1000) === 0).slice(0, 1000);
  const t2 = performance.now();
  let hitsSelf = 0;
  for (const q of queries) {
    const [top] = await Effect.runPromise(retriever.search(q.contents.split("\n")[1], 3));
    if (top?.id === q.id) hitsSelf++;
  }
  const tSearch = ms(t2);
  console.log(
    `loadBenchmarks (all ${benchmarks.length} files, ${fmt(docs.length)} rows): ${tLoad.toFixed(0)} ms; ` +
      `BM25 index ${fmt(docs.length)} passages: ${tIndex.toFixed(0)} ms; ` +
      `search top-3 x ${queries.length}: ${(tSearch / queries.length).toFixed(2)} ms/query (self-retrieval@1 ${((100 * hitsSelf) / queries.length).toFixed(1)}%)`,
  );
}

// 3. HttpExecutor overhead against a local server that answers at once.
{
  const body = JSON.stringify({ choices: [{ message: { content: "ok" }, finish_reason: "stop" }] });
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(body);
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${server.address().port}`;
  const n = 2000;
  const t0 = performance.now();
  await Effect.runPromise(
    Effect.gen(function* () {
      const executor = yield* Executor;
      yield* Effect.forEach(
        Array.from({ length: n }, (_, i) => i),
        (i) => executor.complete({ messages: [{ role: "user", content: `q${i}` }] }),
        { concurrency: "unbounded", discard: true },
      );
    }).pipe(Effect.provide(HttpExecutor.layer({ baseUrl: url, model: "m", concurrency: 8, env: {} }))),
  );
  const t = ms(t0);
  console.log(
    `HttpExecutor ${n} completions, concurrency 8, local server: ${t.toFixed(0)} ms, ${fmt(n / (t / 1000))} req/s`,
  );
  server.close();
}
