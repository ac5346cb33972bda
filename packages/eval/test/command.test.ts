import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { Effect } from "effect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type Benchmark,
  createEvalProgress,
  type EvalCommandDeps,
  evalCommand,
  splitList,
} from "../src/index.js";
import { fakePolicy } from "./fake-policy.js";

const capture = () => {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return { stream, text: () => chunks.join("") };
};

const toy: Benchmark = {
  name: "toy",
  tasks: Array.from({ length: 20 }, (_, i) => ({
    id: `q${i}`,
    question: `What is ${i}?`,
    goldenAnswers: [String(i)],
  })),
};

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "eval-command-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const deps = (): EvalCommandDeps & { calls: () => number } => {
  // Knows the even numbers only.
  const policy = fakePolicy((prompt) => {
    const n = Number(/What is (\d+)\?/.exec(prompt)?.[1]);
    return `<answer>${n % 2 === 0 ? n : n + 1}</answer>`;
  });
  return {
    loadBenchmarks: (_dir, names) =>
      Effect.succeed(names === undefined || names.includes("toy") ? [toy] : []),
    policyLayer: () => policy.layer,
    executorLayer: () => {
      throw new Error("no executor in this test");
    },
    calls: policy.calls,
  };
};

describe("evalCommand", () => {
  it("writes results.jsonl and the three reports, prints plain progress lines, and resumes", async () => {
    const out = join(dir, "out");
    const log = capture();
    const d = deps();
    const options = {
      data: "/nowhere",
      benchmarks: "toy",
      method: "direct",
      model: "m.gguf",
      out,
      limit: 10,
    };
    const first = await Effect.runPromise(
      evalCommand({ ...options, progress: "lines", stream: log.stream }, d),
    );
    expect(first.run.scored).toBe(10);
    expect(first.run.report.summaries[0]!.em.mean).toBe(0.5);
    const lines = log.text().trim().split("\n");
    expect(lines[0]).toBe("[eval] toy/direct 0/10");
    expect(lines.at(-1)).toMatch(/^\[eval\] toy\/direct 10\/10 EM 50\.0 F1 50\.0 \(10 new\)$/);
    expect((await readFile(first.files.results, "utf8")).trim().split("\n")).toHaveLength(10);
    const json = JSON.parse(await readFile(first.files.json, "utf8"));
    expect(json.config.model).toBe("m.gguf");
    expect(json.summaries[0].em.mean).toBe(0.5);
    expect(await readFile(first.files.markdown, "utf8")).toContain("| direct | 50.0 | 50.0 |");
    expect(await readFile(first.files.html, "utf8")).toContain('<canvas id="chart-0">');

    const again = capture();
    const second = await Effect.runPromise(
      evalCommand({ ...options, progress: "lines", stream: again.stream }, d),
    );
    expect(second.run.scored).toBe(0);
    expect(d.calls()).toBe(10);
    expect(again.text()).toContain("toy/direct 10/10 (10 resumed from the results file)");
  });

  it("requires a method", async () => {
    await expect(
      Effect.runPromise(evalCommand({ data: "/x", method: " , ", model: "m", out: join(dir, "o") }, deps())),
    ).rejects.toThrow(/--method is required/);
  });
});

describe("progress", () => {
  it("prints about every 10% in lines mode and nothing in none mode", () => {
    const log = capture();
    const p = createEvalProgress({ mode: "lines", stream: log.stream });
    const result = { em: 1, f1: 1 } as never;
    p.onProgress({ benchmark: "b", method: "m", done: 0, total: 100, resumed: 0 });
    for (let i = 1; i <= 100; i++)
      p.onProgress({ benchmark: "b", method: "m", done: i, total: 100, resumed: 0, result });
    p.stop();
    expect(log.text().trim().split("\n")).toHaveLength(11);
    const quiet = capture();
    const q = createEvalProgress({ mode: "none", stream: quiet.stream });
    q.onProgress({ benchmark: "b", method: "m", done: 0, total: 1, resumed: 0 });
    expect(quiet.text()).toBe("");
  });

  it("splitList accepts commas and lists", () => {
    expect(splitList("bamboogle, hotpotqa,")).toEqual(["bamboogle", "hotpotqa"]);
    expect(splitList(["nq"])).toEqual(["nq"]);
    expect(splitList(undefined)).toBeUndefined();
  });
});
