import type { Task } from "@workflow-r1/core";
import { Effect, Layer } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { evaluate } from "../src/index.js";
import { type ExecutorServer, startExecutorServer } from "./executor-server.js";
import { fakePolicy } from "./fake-policy.js";
import { askEnvironment, fetchExecutor } from "./test-environment.js";

const tasks: Task[] = [
  { id: "a", question: "Capital of France?", goldenAnswers: ["Paris"] },
  { id: "b", question: "Largest planet?", goldenAnswers: ["Jupiter"] },
];

let server: ExecutorServer;
beforeAll(async () => {
  server = await startExecutorServer((q) => (q.includes("France") ? "Paris" : "no idea"));
});
afterAll(async () => {
  await server.close();
});

describe("workflow method (scripted policy, real HTTP executor)", () => {
  it("runs multi-turn episodes, counts operator calls and turns, scores the final answer", async () => {
    // Turn 0 asks the operator; turn 1 answers Paris for France and Mars otherwise.
    const policy = fakePolicy((prompt, _seed, turn) =>
      turn === 0
        ? "<think> ask </think> <tool>Ask: the question</tool>"
        : `<think> read </think> <answer>${prompt.includes("France") ? "Paris" : "Mars"}</answer>`,
    );
    const before = server.requests();
    const run = await Effect.runPromise(
      evaluate({ benchmarks: [{ name: "toy", tasks }], method: "workflow", samples: 2 }).pipe(
        Effect.provide(
          Layer.mergeAll(policy.layer, askEnvironment.pipe(Layer.provide(fetchExecutor(server.url)))),
        ),
      ),
    );
    expect(server.requests() - before).toBe(4); // 2 questions × 2 samples × 1 Ask
    expect(run.results.map((r) => r.em)).toEqual([1, 0]);
    for (const r of run.results) {
      expect(r.turns).toBe(2);
      expect(r.operatorCalls).toEqual({ Ask: 1 });
      expect(r.format).toBe(1);
      expect(r.samples.map((s) => s.finishReason)).toEqual(["answer", "answer"]);
    }
    const summary = run.report.summaries[0]!;
    expect(summary.operatorCalls["Ask"]!.mean).toBe(1);
    // Without <think> before the answer the Workflow-R1 format check fails.
    const sloppy = fakePolicy((_p, _s, turn) =>
      turn === 0 ? "<think> a </think> <tool>Ask: q</tool>" : "<answer>Paris</answer>",
    );
    const rerun = await Effect.runPromise(
      evaluate({ benchmarks: [{ name: "toy", tasks }], method: "workflow", limit: 1 }).pipe(
        Effect.provide(
          Layer.mergeAll(sloppy.layer, askEnvironment.pipe(Layer.provide(fetchExecutor(server.url)))),
        ),
      ),
    );
    expect(rerun.results[0]!.format).toBe(0);
    expect(rerun.results[0]!.em).toBe(1);
    expect(summary.turns.mean).toBe(2);
  });

  it("ends an episode at the turn budget through finish", async () => {
    const policy = fakePolicy(() => "<tool>Ask: again</tool>");
    const run = await Effect.runPromise(
      evaluate({ benchmarks: [{ name: "toy", tasks }], method: "workflow", maxTurns: 3, limit: 1 }).pipe(
        Effect.provide(
          Layer.mergeAll(policy.layer, askEnvironment.pipe(Layer.provide(fetchExecutor(server.url)))),
        ),
      ),
    );
    const r = run.results[0]!;
    expect(r.turns).toBe(3);
    expect(r.operatorCalls).toEqual({ Ask: 3 });
    expect(r.samples[0]!.finishReason).toBe("max-turns");
    expect(r.format).toBe(0);
    expect(r.prediction).toBeNull();
  });

  it("fails with a clear error when no Environment is provided", async () => {
    const policy = fakePolicy(() => "");
    await expect(
      Effect.runPromise(
        evaluate({ benchmarks: [{ name: "toy", tasks }], method: "workflow" }).pipe(
          Effect.provide(policy.layer),
        ),
      ),
    ).rejects.toThrow(/method workflow needs an Environment/);
  });
});

describe("episodeSample", () => {
  it("counts failed operator calls (executor outages) in their own column", async () => {
    const { TrajectoryBuilder } = await import("@workflow-r1/core");
    const { episodeSample } = await import("../src/index.js");
    const b = new TrajectoryBuilder([1]);
    b.appendSampled([2], [-1]);
    const t = b.build({
      reward: 0,
      rewardParts: {},
      groupId: "g",
      taskId: "t",
      finishReason: "answer",
      turns: [
        {
          action: "<think>a</think><tool>Review: x</tool>",
          observation: "Error: operator Review failed: HTTP 500",
          operatorCalls: [{ operator: "Review", input: "x", output: "", latencyMs: 1, error: "HTTP 500" }],
          sampledTokens: 1,
          sampleMs: 1,
          envMs: 1,
        },
        {
          action: "<think>b</think><answer>Paris</answer>",
          operatorCalls: [],
          sampledTokens: 1,
          sampleMs: 1,
          envMs: 0,
        },
      ],
    });
    expect(episodeSample(t).operatorCalls).toEqual({ Review: 1, failed: 1 });
  });
});
