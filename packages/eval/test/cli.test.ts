/**
 * Integration: `runEvalCommand` end to end with its default services — env-qa's loaders on the
 * shared Bamboogle file (read in place), llama.cpp on a tiny GGUF, env-qa's HttpExecutor on a
 * local server — then a second run that resumes from results.jsonl.
 */
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { createTinyLlama } from "@workflow-r1/gguf";
import { Effect, Exit } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadEvalBenchmarks, runEvalCommand } from "../src/index.js";
import { type ExecutorServer, startExecutorServer } from "./executor-server.js";
import { fakePolicy } from "./fake-policy.js";

const data = "/work/shared/data/qa";
const haveData = existsSync(join(data, "bamboogle/test.jsonl"));
if (!haveData) console.warn(`[eval] skipping runEvalCommand tests: ${data} is absent`);

let dir: string;
let model: string;
let server: ExecutorServer;
beforeAll(async () => {
  // The operators' LLM: answers AnswerGenerate prompts about Citibank with James Madison.
  server = await startExecutorServer((prompt) =>
    prompt.includes("Citibank")
      ? "<think> 1812 </think> <answer>James Madison</answer>"
      : "<answer>unknown</answer>",
  );
  dir = await mkdtemp(join(tmpdir(), "eval-cli-"));
  model = (
    await createTinyLlama({
      path: join(dir, "tiny.gguf"),
      vocab: 300,
      dim: 64,
      layers: 2,
      heads: 4,
      kvHeads: 2,
      ffn: 128,
      seed: 5,
    })
  ).path;
});
afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

const sink = () => {
  const chunks: string[] = [];
  return {
    stream: new Writable({
      write(chunk, _e, done) {
        chunks.push(String(chunk));
        done();
      },
    }),
    text: () => chunks.join(""),
  };
};

describe.skipIf(!haveData)("runEvalCommand", () => {
  it("loads benchmarks by dataset name with Search-R1 question preprocessing", async () => {
    const [bamboogle, hotpot] = await Effect.runPromise(loadEvalBenchmarks(data, ["bamboogle", "hotpotqa"]));
    expect(bamboogle!.name).toBe("bamboogle");
    expect(bamboogle!.tasks).toHaveLength(125);
    expect(bamboogle!.tasks[0]!.goldenAnswers).toEqual(["james madison"]);
    expect(bamboogle!.tasks.every((t) => t.question.endsWith("?"))).toBe(true);
    expect(hotpot!.file).toMatch(/hotpotqa\/dev\.jsonl$/);
    const exit = await Effect.runPromiseExit(loadEvalBenchmarks(data, ["squad"]));
    expect(Exit.isFailure(exit) && String(exit.cause)).toMatch(
      /unknown benchmark squad; available: .*bamboogle/,
    );
  });

  it("direct on Bamboogle: writes results and reports, and a re-run scores nothing new", async () => {
    const out = join(dir, "out");
    const options = {
      data,
      benchmarks: "bamboogle",
      method: "direct",
      model,
      executorUrl: "http://127.0.0.1:9/v1", // built but never called by `direct`
      executorModel: "test",
      limit: 3,
      maxTokens: 8,
      out,
      gpu: false as const,
      threads: 2,
      contextSize: 512,
      progress: "lines" as const,
    };
    const log = sink();
    const first = await runEvalCommand({ ...options, stream: log.stream });
    expect(first.run.scored).toBe(3);
    expect(log.text()).toContain("[eval] bamboogle/direct 3/3");
    const lines = (await readFile(first.files.results, "utf8")).trim().split("\n");
    // Appended as questions finish (concurrently), so in any order.
    expect(lines.map((l) => JSON.parse(l).taskId).sort()).toEqual(["test_0", "test_1", "test_2"]);
    expect(await readFile(first.files.markdown, "utf8")).toMatch(/\| Method \| bamboogle \| Avg\. \|/);
    const again = sink();
    const second = await runEvalCommand({ ...options, stream: again.stream });
    expect(second.run.scored).toBe(0);
    expect(second.run.resumed).toBe(3);
    expect(again.text()).toContain("3 resumed from the results file");
  });

  it("refuses workflow without an executor URL", async () => {
    await expect(
      runEvalCommand({ data, benchmarks: "bamboogle", method: "workflow", model, out: join(dir, "w") }),
    ).rejects.toThrow(/--method workflow needs --executor-url/);
  });

  it("workflow through env-qa's WorkflowR1Env and HttpExecutor: operator calls reach the executor", async () => {
    // A scripted agent: call AnswerGenerate on the question, then answer with what came back.
    const agent = fakePolicy((prompt, _seed, turn) => {
      const question = prompt.includes("Citibank")
        ? "Who was US president when Citibank was founded?"
        : "Uranus?";
      return turn === 0
        ? `<think> delegate </think> <tool>AnswerGenerate: ${question}</tool>`
        : "<think> the operator said James Madison </think> <answer>James Madison</answer>";
    });
    const before = server.requests();
    const out = join(dir, "wf");
    const options = {
      data,
      benchmarks: "bamboogle",
      method: "workflow",
      model,
      executorUrl: server.url,
      executorModel: "test",
      limit: 2,
      out,
      progress: "none" as const,
    };
    const result = await runEvalCommand(options, { policyLayer: () => agent.layer });
    expect(agent.appended()[0]).toContain("James Madison"); // the operator's result, as an observation
    // At least one request per operator call (env-qa may retry a reply that lacks its tag).
    const requests = server.requests() - before;
    expect(requests).toBeGreaterThanOrEqual(2);
    const [citibank, uranus] = result.run.results;
    expect(citibank!.taskId).toBe("test_0");
    expect(citibank!.operatorCalls).toEqual({ AnswerGenerate: 1 });
    expect(citibank!.turns).toBe(2);
    expect(citibank!.format).toBe(1);
    expect(citibank!.em).toBe(1); // golden "james madison"
    expect(uranus!.em).toBe(0);
    expect(result.run.report.summaries[0]!.operatorCalls["AnswerGenerate"]!.mean).toBe(1);
    const html = await readFile(result.files.html, "utf8");
    expect(html).toContain("bamboogle: operator calls per episode");
    const again = await runEvalCommand(options, { policyLayer: () => agent.layer });
    expect(again.run.scored).toBe(0);
    expect(server.requests() - before).toBe(requests);
  });

  it("workflow with the tiny llama.cpp model runs whole episodes", async () => {
    const result = await runEvalCommand({
      data,
      benchmarks: "bamboogle",
      method: "workflow",
      model,
      executorUrl: server.url,
      executorModel: "test",
      limit: 2,
      maxTurns: 2,
      maxTokens: 8,
      out: join(dir, "wf-llama"),
      gpu: false,
      threads: 2,
      contextSize: 2048,
      progress: "none",
    });
    expect(result.run.scored).toBe(2);
    for (const r of result.run.results) {
      const sample = r.samples[0]!;
      expect(sample.error).toBeUndefined();
      expect(sample.turns).toBeGreaterThanOrEqual(1);
      expect(sample.turns).toBeLessThanOrEqual(2);
      expect(sample.tokens).toBeGreaterThan(0);
      expect(["answer", "max-turns", "max-tokens", "context-overflow", "done", "operator-budget"]).toContain(
        sample.finishReason,
      );
    }
  });
});
