import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { Effect } from "effect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type Benchmark,
  createEvalProgress,
  decodeEvalOptions,
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
    expect(lines).toContainEqual(
      expect.stringMatching(/^\[eval\] toy\/direct 10\/10 EM 50\.0 F1 50\.0 \(10 new\)$/),
    );
    // Where everything went, and the summary.
    expect(lines).toContain(`eval: results ${first.files.results}`);
    expect(lines).toContain(
      `eval: reports ${first.files.json}, ${first.files.markdown}, ${first.files.html}`,
    );
    expect(lines).toContain("eval: toy / direct: EM 50.0 F1 50.0 over 10 questions");
    // Each sample's raw output is kept.
    const saved = JSON.parse((await readFile(first.files.results, "utf8")).split("\n")[0]!);
    expect(typeof saved.samples[0].text).toBe("string");
    expect(saved.samples[0].text.length).toBeGreaterThan(0);
    expect(saved.configKey).toMatch(/^[0-9a-f]{16}$/);
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

  it("reuses results only for the same model and settings", async () => {
    const out = join(dir, "keys");
    const d = deps();
    const base = {
      data: "/nowhere",
      benchmarks: "toy",
      method: "direct",
      out,
      limit: 4,
      progress: "none" as const,
    };
    const modelA = join(dir, "a.gguf");
    const modelB = join(dir, "b.gguf");
    await writeFile(modelA, "GGUF model A");
    await writeFile(modelB, "GGUF model B, another policy");
    await Effect.runPromise(evalCommand({ ...base, model: modelA }, d));
    expect(d.calls()).toBe(4);
    // Same model and settings: reused.
    expect((await Effect.runPromise(evalCommand({ ...base, model: modelA }, d))).run.resumed).toBe(4);
    expect(d.calls()).toBe(4);
    // Another model file, or another temperature: answered again, the old answers ignored.
    const other = await Effect.runPromise(evalCommand({ ...base, model: modelB }, d));
    expect([other.run.scored, other.run.resumed, other.run.stale]).toEqual([4, 0, 4]);
    expect(
      (await Effect.runPromise(evalCommand({ ...base, model: modelA, temperature: 0.7 }, d))).run.scored,
    ).toBe(4);
    expect(d.calls()).toBe(12);
    // The same path with new contents (a retrained policy) is another model.
    await writeFile(modelA, "GGUF model A, retrained");
    expect((await Effect.runPromise(evalCommand({ ...base, model: modelA }, d))).run.scored).toBe(4);
  });

  it("runs the policy with all cores and its training run's context size unless told otherwise", async () => {
    const seen: Array<{ threads?: number; contextSize?: number; gpu?: unknown }> = [];
    const d = deps();
    const spy: EvalCommandDeps = {
      ...d,
      policyLayer: (options) => {
        seen.push({ threads: options.threads, contextSize: options.contextSize, gpu: options.gpu });
        return d.policyLayer(options);
      },
    };
    const base = { data: "/nowhere", method: "direct", limit: 1, progress: "none" as const };
    const runDir = join(dir, "run");
    await mkdir(runDir);
    await writeFile(join(runDir, "policy.gguf"), "GGUF");
    await writeFile(join(runDir, "config.json"), JSON.stringify({ model: { contextSize: 3072 } }));
    const trained = await Effect.runPromise(
      evalCommand({ ...base, model: join(runDir, "policy.gguf"), out: join(dir, "t") }, spy),
    );
    await Effect.runPromise(
      evalCommand(
        { ...base, model: join(runDir, "policy.gguf"), out: join(dir, "u"), contextSize: 512, threads: 1 },
        spy,
      ),
    );
    await Effect.runPromise(evalCommand({ ...base, model: "m.gguf", out: join(dir, "v") }, spy));
    expect(seen).toEqual([
      { threads: undefined, contextSize: 3072, gpu: undefined },
      { threads: 1, contextSize: 512, gpu: undefined },
      { threads: undefined, contextSize: undefined, gpu: undefined },
    ]);
    // The report says what the policy ran with (threads default to the available cores).
    expect(trained.run.report.config["policy"]).toEqual({
      threads: availableParallelism(),
      contextSize: 3072,
      gpu: "auto",
    });
  });

  it("names a missing --model, and refuses an empty selection", async () => {
    await expect(
      Effect.runPromise(evalCommand({ data: "/x", method: "direct", out: join(dir, "o") } as never, deps())),
    ).rejects.toThrow(/--model is required: the policy GGUF/);
    await expect(
      Effect.runPromise(
        evalCommand(
          { data: "/x", method: "direct", model: "m.gguf", out: join(dir, "o2"), progress: "none" },
          { ...deps(), loadBenchmarks: () => Effect.succeed([{ name: "empty", tasks: [] }]) },
        ),
      ),
    ).rejects.toThrow(/no questions to evaluate: empty has none/);
  });

  it("requires a method", async () => {
    await expect(
      Effect.runPromise(evalCommand({ data: "/x", method: " , ", model: "m", out: join(dir, "o") }, deps())),
    ).rejects.toThrow(/--method is required/);
  });
});

describe("evalCommand options", () => {
  it("refuses a misspelt option and bad values by name before loading anything", async () => {
    const d = deps();
    let loaded = 0;
    const counting = {
      ...d,
      loadBenchmarks: (dataDir: string, names: ReadonlyArray<string> | undefined) => {
        loaded++;
        return d.loadBenchmarks(dataDir, names);
      },
    };
    const run = (options: Record<string, unknown>) =>
      Effect.runPromise(
        evalCommand({ data: "/x", method: "direct", model: "m.gguf", ...options } as never, counting),
      );
    await expect(run({ limt: 3 })).rejects.toMatchObject({ _tag: "EvaluationError", field: "options" });
    await expect(run({ limt: 3 })).rejects.toThrow(/limt/);
    await expect(run({ samples: 0 })).rejects.toThrow(/samples/);
    await expect(run({ temperature: -1 })).rejects.toThrow(/temperature/);
    await expect(run({ gpu: "metal" })).rejects.toThrow(/gpu/);
    await expect(run({ answerer: "oracle" })).rejects.toThrow(/answerer/);
    expect(loaded).toBe(0);
    expect(d.calls()).toBe(0);
  });

  it("decodes valid options as given and passes the output stream through", async () => {
    const { stream } = capture();
    const options = { data: "/x", method: ["direct", "cot"], limit: 2, gpu: false as const, stream };
    const decoded = await Effect.runPromise(decodeEvalOptions(options));
    expect(decoded).toEqual(options);
    expect(decoded.stream).toBe(stream);
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
