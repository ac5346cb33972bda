/**
 * Integration: the runner over the real llama.cpp policy (a tiny random GGUF made here) on the
 * first Bamboogle questions, read in place from the shared data directory.
 */
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ModelLoadError, Policy, Task } from "@workflow-r1/core";
import { createTinyLlama, type TinyModelInfo } from "@workflow-r1/gguf";
import { LlamaCppPolicy } from "@workflow-r1/policy";
import { Effect, Layer, ManagedRuntime } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EvaluateOptions, evaluate } from "../src/index.js";
import { type ExecutorServer, startExecutorServer } from "./executor-server.js";
import { askEnvironment, fetchExecutor } from "./test-environment.js";

const bamboogle = "/work/shared/data/qa/bamboogle/test.jsonl";
const haveData = existsSync(bamboogle);
if (!haveData) console.warn(`[eval] skipping llama.cpp runner tests: ${bamboogle} is absent`);

let dir: string;
let model: TinyModelInfo;
let tasks: Task[];
let server: ExecutorServer;
// One loaded model for the whole file: every evaluate below runs on this runtime's Policy.
let runtime: ManagedRuntime.ManagedRuntime<Policy, ModelLoadError>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "eval-llama-"));
  server = await startExecutorServer((q) => `result for: ${q.slice(0, 20)}`);
  model = await createTinyLlama({
    path: join(dir, "tiny.gguf"),
    vocab: 300,
    dim: 64,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    ffn: 128,
    seed: 3,
  });
  if (haveData)
    tasks = (await readFile(bamboogle, "utf8"))
      .split("\n")
      .slice(0, 3)
      .map((line) => JSON.parse(line))
      .map((r) => ({ id: r.id, question: r.question, goldenAnswers: r.golden_answers }));
  runtime = ManagedRuntime.make(
    LlamaCppPolicy.layer({ modelPath: model.path, gpu: false, contextSize: 512, sequences: 4, threads: 2 }),
  );
});
afterAll(async () => {
  await runtime?.dispose();
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

const run = (options: Omit<EvaluateOptions, "benchmarks">) =>
  runtime.runPromise(evaluate({ benchmarks: [{ name: "bamboogle", tasks }], ...options }));

describe.skipIf(!haveData)("evaluate on llama.cpp (tiny model)", () => {
  it("direct: samples, scores and resumes a few Bamboogle questions", async () => {
    const resultsFile = join(dir, "direct.jsonl");
    const first = await run({ method: "direct", maxTokens: 12, samples: 2, resultsFile });
    expect(first.scored).toBe(3);
    for (const r of first.results) {
      expect(r.samples).toHaveLength(2);
      for (const s of r.samples) {
        expect(s.error).toBeUndefined();
        expect(s.tokens).toBeGreaterThan(0);
        expect(s.tokens).toBeLessThanOrEqual(12);
        expect(s.turns).toBe(1);
        expect(["stop", "eos", "length"]).toContain(s.finishReason);
        // A random model writes no answer tag: EM must be 0, never a false positive.
        if (s.prediction === null) expect(s.em).toBe(0);
      }
    }
    const summary = first.report.summaries[0]!;
    expect(summary.questions).toBe(3);
    expect(summary.tokens.mean).toBeGreaterThan(0);
    expect(Object.keys(summary.passAtK)).toEqual(["1", "2"]);

    const second = await run({ method: "direct", maxTokens: 12, samples: 2, resultsFile });
    expect(second.scored).toBe(0);
    expect(second.resumed).toBe(3);
    expect(second.report.summaries[0]!.tokens.mean).toBe(summary.tokens.mean);
  });

  it("greedy sampling with one sample is reproducible", async () => {
    const a = await run({ method: "cot", maxTokens: 10, limit: 2 });
    const b = await run({ method: "cot", maxTokens: 10, limit: 2 });
    expect(a.results.map((r) => r.tokens)).toEqual(b.results.map((r) => r.tokens));
    expect(a.results.map((r) => r.prediction)).toEqual(b.results.map((r) => r.prediction));
  });

  it("workflow: multi-turn episodes with operator calls over a real HTTP executor", async () => {
    const environment = askEnvironment.pipe(Layer.provide(fetchExecutor(server.url)));
    const before = server.requests();
    const resultsFile = join(dir, "workflow.jsonl");
    const first = await runtime.runPromise(
      evaluate({
        benchmarks: [{ name: "bamboogle", tasks }],
        method: "workflow",
        maxTurns: 2,
        maxTokens: 8,
        limit: 2,
        resultsFile,
      }).pipe(Effect.provide(environment)),
    );
    expect(first.scored).toBe(2);
    let asks = 0;
    for (const r of first.results) {
      const s = r.samples[0]!;
      expect(s.error).toBeUndefined();
      expect(s.turns).toBeGreaterThanOrEqual(1);
      expect(s.turns).toBeLessThanOrEqual(2);
      expect(s.tokens).toBeGreaterThan(0);
      asks += s.operatorCalls["Ask"] ?? 0;
      // Every turn without an answer called the operator once.
      if (s.finishReason === "max-turns") expect(s.operatorCalls["Ask"]).toBe(2);
    }
    expect(asks).toBeGreaterThan(0);
    expect(server.requests() - before).toBe(asks);
    const second = await runtime.runPromise(
      evaluate({
        benchmarks: [{ name: "bamboogle", tasks }],
        method: "workflow",
        maxTurns: 2,
        maxTokens: 8,
        limit: 2,
        resultsFile,
      }).pipe(Effect.provide(environment)),
    );
    expect(second.scored).toBe(0);
    expect(server.requests() - before).toBe(asks);
  });
});
