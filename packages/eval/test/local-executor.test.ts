/**
 * `workflow-r1 eval --executor-local <gguf>`: the operators' executor (and the executor-alone
 * baselines) on a GGUF in-process, through env-qa's LocalModelExecutor, on SmolLM2-135M-Instruct.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { realModelPath } from "@workflow-r1/gguf";
import { Effect } from "effect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Benchmark, defaultEvalCommandDeps, type EvalCommandDeps, evalCommand } from "../src/index.js";
import { type FakePolicy, fakePolicy } from "./fake-policy.js";

const sink = () =>
  new Writable({
    write(_chunk, _encoding, done) {
      done();
    },
  });

const france: Benchmark = {
  name: "toy",
  tasks: [{ id: "q0", question: "What is the capital of France?", goldenAnswers: ["Paris"] }],
};

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "eval-local-executor-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * The real environment and local executor layers (one sequence); the toy benchmark; a scripted
 * policy, whose `appended()` holds the observations the environment sent back.
 */
const deps = (answer: (turn: number) => string): EvalCommandDeps & { policy: FakePolicy } => {
  const policy = fakePolicy((_prompt, _seed, turn) => answer(turn));
  return {
    ...defaultEvalCommandDeps,
    loadBenchmarks: () => Effect.succeed([france]),
    policyLayer: () => policy.layer,
    localExecutorLayer: (options) =>
      defaultEvalCommandDeps.localExecutorLayer!({ ...options, concurrency: 1 }),
    policy,
  };
};

const base = { data: "/nowhere", benchmarks: "toy", progress: "none" as const, stream: sink() };

describe("eval --executor-local", () => {
  it("refuses a missing GGUF by its flag, and an endpoint beside it", async () => {
    const missing = join(dir, "absent.gguf");
    const failure = await Effect.runPromise(
      Effect.flip(
        evalCommand(
          { ...base, method: "direct", answerer: "executor", executorLocal: missing, out: join(dir, "a") },
          deps(() => ""),
        ),
      ),
    );
    expect(String((failure as Error).message)).toContain(
      `--executor-local: the executor model ${missing} does not exist`,
    );
    const both = await Effect.runPromise(
      Effect.flip(
        evalCommand(
          {
            ...base,
            method: "workflow",
            model: "m.gguf",
            executorLocal: missing,
            executorUrl: "http://127.0.0.1:1/v1",
            out: join(dir, "b"),
          },
          deps(() => ""),
        ),
      ),
    );
    expect(String((both as Error).message)).toContain("--executor-local and --executor-url are exclusive");
  });

  it("runs the workflow agent's operator calls on the local GGUF", async () => {
    const model = realModelPath("smollm2");
    // Turn 0: call AnswerGenerate; then answer.
    const d = deps((turn) =>
      turn === 0
        ? "<think>ask</think>\n<tool>AnswerGenerate: What is the capital of France?</tool>"
        : "<think>done</think>\n<answer>Paris</answer>",
    );
    const { run } = await Effect.runPromise(
      evalCommand(
        { ...base, method: "workflow", model: "fake.gguf", executorLocal: model, out: join(dir, "w") },
        d,
      ),
    );
    expect(run.failed).toBe(0);
    expect(run.report.summaries[0]?.em.mean).toBe(1);
    expect(run.results[0]?.operatorCalls).toEqual({ AnswerGenerate: 1 });
    // The operator ran on the executor and answered: a non-empty <info> observation, no error.
    const observation = d.policy.appended().join("");
    expect(observation).toMatch(/<info>[\s\S]*\S[\s\S]*<\/info>/);
    expect(observation).not.toContain("failed");
  }, 120_000);

  it("answers the executor-alone baseline on the local GGUF", async () => {
    const model = realModelPath("smollm2");
    const { run } = await Effect.runPromise(
      evalCommand(
        {
          ...base,
          method: "direct",
          answerer: "executor",
          executorLocal: model,
          maxTokens: 32,
          out: join(dir, "d"),
        },
        deps(() => ""),
      ),
    );
    expect(run.failed).toBe(0);
    expect(run.results).toHaveLength(1);
  }, 120_000);
});
