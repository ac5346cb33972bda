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
import { createTinyLlama } from "@workflow-r1/policy";
import { Effect, Exit } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadEvalBenchmarks, runEvalCommand } from "../src/index.js";

const data = "/work/shared/data/qa";
const haveData = existsSync(join(data, "bamboogle/test.jsonl"));
if (!haveData) console.warn(`[eval] skipping runEvalCommand tests: ${data} is absent`);

let dir: string;
let model: string;
beforeAll(async () => {
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
});
