/**
 * Integration: rollouts on the real llama.cpp policy (a tiny random GGUF made here by
 * createTinyLlama) with real environments. A random model writes no protocol, so the multi-turn
 * path is forced by a test environment that always answers with an observation; the arithmetic
 * environment (@workflow-r1/env-arith) is the real one.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  Environment,
  type Episode,
  Policy,
  type Task,
  type Trajectory,
  validateTrajectory,
} from "@workflow-r1/core";
import { environmentPlugin as arith } from "@workflow-r1/env-arith";
import { SyntheticQAEnv, syntheticTasks } from "@workflow-r1/env-synthetic";
import { createTinyLlama, type TinyModelInfo } from "@workflow-r1/gguf";
import { LlamaCppPolicy, type LlamaCppPolicyShape } from "@workflow-r1/policy";
import { Effect, Fiber, Layer } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  appendTrajectory,
  formatTrajectory,
  readTrajectoryLogAll,
  rollout,
  trajectoryLogWriter,
} from "../src/index.js";

let dir: string;
let model: TinyModelInfo;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "rollout-llama-"));
  model = await createTinyLlama({
    path: join(dir, "tiny.gguf"),
    vocab: 300,
    dim: 64,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    ffn: 128,
    seed: 7,
  });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const policyLayer = () =>
  LlamaCppPolicy.layer({
    modelPath: model.path,
    gpu: false,
    contextSize: 1024,
    sequences: 4,
    threads: 1,
    kvCacheType: "F32",
  });

/** Answers every action with an observation until `turns` actions were taken. */
const echoEnvironment = (turns: number) =>
  Layer.succeed(Environment, {
    name: "echo",
    stopSequences: ["</tool>"],
    reset: (task: Task) =>
      Effect.sync(() => {
        let taken = 0;
        const episode: Episode = {
          messages: [
            { role: "system", content: "Answer with tools." },
            { role: "user", content: task.question },
          ],
          step: (action) =>
            Effect.sync(() => {
              taken++;
              if (taken >= turns)
                return {
                  _tag: "Done" as const,
                  operatorCalls: [],
                  reward: 0.5,
                  rewardParts: { format: 0.5 },
                  finishReason: "done" as const,
                };
              return {
                _tag: "Observation" as const,
                observation: `seen ${action.length} chars`,
                operatorCalls: [{ operator: "echo", input: action.slice(0, 10), output: "ok", latencyMs: 0 }],
              };
            }),
          finish: (reason) => Effect.succeed({ reward: 0, rewardParts: {}, finishReason: reason }),
        };
        return episode;
      }),
  });

const questions: Task[] = Array.from({ length: 3 }, (_, i) => ({
  id: `q${i}`,
  question: `What is item ${i}?`,
}));

describe("rollout on llama.cpp (tiny model)", () => {
  it("multi-turn groups are valid, token in token out, and the policy scores its own samples", async () => {
    const logFile = join(dir, "echo.wr1log");
    const { result, checks } = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const writer = yield* trajectoryLogWriter(logFile);
          const result = yield* rollout(questions, {
            groupSize: 2,
            maxConcurrentEpisodes: 4,
            maxTurns: 3,
            maxTokens: 48,
            maxTokensPerTurn: 12,
            onTrajectory: (t) => appendTrajectory(writer, t),
          });
          const policy = yield* Policy;
          // Teacher-forced logprobs of each trajectory under the same weights.
          const checks = yield* Effect.forEach(
            result.groups.flatMap((g) => g.trajectories),
            (t) => Effect.map(policy.score(t.tokens, t.promptLength), (lp) => ({ t, lp })),
          );
          return { result, checks };
        }),
      ).pipe(Effect.provide(Layer.merge(policyLayer(), echoEnvironment(3)))),
    );
    const all: Trajectory[] = result.groups.flatMap((g) => g.trajectories);
    expect(result.groups).toHaveLength(3);
    for (const g of result.groups) {
      expect(g.trajectories).toHaveLength(2);
      for (const t of g.trajectories) expect(t.groupId).toBe(g.groupId);
    }
    for (const t of all) {
      validateTrajectory(t);
      expect(t.error).toBeUndefined();
      expect(["done", "max-tokens", "max-turns"]).toContain(t.finishReason);
      expect(t.turns.length).toBeGreaterThanOrEqual(1);
      const sampled = t.mask.reduce((s, m) => s + m, 0);
      expect(sampled).toBe(t.turns.reduce((s, turn) => s + turn.sampledTokens, 0));
      expect(sampled).toBeLessThanOrEqual(48);
    }
    // At least some episodes really went through observations (a random model rarely emits EOS at once).
    expect(all.some((t) => t.turns.length >= 2)).toBe(true);
    for (const { t, lp } of checks)
      for (let p = t.promptLength; p < t.tokens.length; p++)
        if (t.mask[p] === 1)
          expect(Math.abs(lp[p - t.promptLength]! - t.samplerLogprobs[p]!)).toBeLessThan(2e-3);
    expect(result.metrics.episodes).toBe(6);
    expect(result.metrics.maxBatchOccupancy).toBeGreaterThan(1);
    const log = await readTrajectoryLogAll(logFile);
    expect(log.ignoredBytes).toBe(0);
    expect(log.trajectories.map((t) => t.taskId).sort()).toEqual(all.map((t) => t.taskId).sort());
    expect(formatTrajectory(log.trajectories[0]!)).toContain("turn 1:");
  });

  it("the arithmetic environment: valid groups, and a flagged context overflow", async () => {
    const tasks = await Effect.runPromise(arith.tasks({ trainSize: 4, evalSize: 2 }, "train", 1));
    const result = await Effect.runPromise(
      rollout(tasks.slice(0, 2), { groupSize: 3, maxConcurrentEpisodes: 4, maxTurns: 3, maxTokens: 24 }).pipe(
        Effect.provide(Layer.merge(policyLayer(), Layer.orDie(arith.layer({})))),
      ),
    );
    const all = result.groups.flatMap((g) => g.trajectories);
    expect(all).toHaveLength(6);
    for (const t of all) {
      validateTrajectory(t);
      expect(t.error).toBeUndefined();
    }
    expect(result.metrics.maxLiveEpisodes).toBe(4);

    // A prompt longer than the policy's context: the episode is kept, flagged, and the rest go on.
    const tiny = await Effect.runPromise(
      rollout([{ id: "long", question: "x".repeat(1500) }, questions[0]!], {
        groupSize: 1,
        maxConcurrentEpisodes: 2,
        maxTurns: 1,
        maxTokens: 4,
      }).pipe(Effect.provide(Layer.merge(policyLayer(), echoEnvironment(1)))),
    );
    expect(["done", "max-tokens"]).toContain(tiny.groups[1]!.trajectories[0]!.finishReason);
    const overflow = tiny.groups[0]!.trajectories[0]!;
    expect(overflow.finishReason).toBe("context-overflow");
    expect(overflow.error).toMatch(/^ContextOverflowError/);
    validateTrajectory(overflow);
  });

  it("SyntheticQAEnv: valid groups of G trajectories per task", async () => {
    const tasks = syntheticTasks({ count: 3, seed: 11, difficulty: 2 });
    const result = await Effect.runPromise(
      rollout(tasks, {
        groupSize: 4,
        maxConcurrentEpisodes: 4,
        maxTurns: 3,
        maxTokens: 40,
        maxTokensPerTurn: 20,
      }).pipe(
        Effect.provide(Layer.merge(policyLayer(), Layer.orDie(SyntheticQAEnv.layer({ difficulty: 2 })))),
      ),
    );
    expect(result.groups.map((g) => g.task.id)).toEqual(tasks.map((t) => t.id));
    for (const g of result.groups) {
      expect(g.trajectories).toHaveLength(4);
      for (const t of g.trajectories) {
        validateTrajectory(t);
        expect(t.groupId).toBe(g.groupId);
        expect(t.taskId).toBe(g.task.id);
        expect(t.error).toBeUndefined();
        expect(t.mask.reduce((a, m) => a + m, 0)).toBeGreaterThan(0);
      }
    }
    expect(result.metrics.episodes).toBe(12);
    expect(result.metrics.maxLiveEpisodes).toBe(4);
  });

  it("interrupting a rollout stops all decoding: no llama_decode runs after the interrupt", async () => {
    const counts = await Effect.runPromise(
      Effect.gen(function* () {
        const policy = (yield* Policy) as LlamaCppPolicyShape;
        const fiber = yield* Effect.forkChild(
          rollout(questions, {
            groupSize: 2,
            maxConcurrentEpisodes: 4,
            maxTurns: 1,
            maxTokens: 900,
            maxTokensPerTurn: 64,
          }),
        );
        while (policy.decodeCalls() < 20) yield* Effect.sleep("5 millis");
        yield* Fiber.interrupt(fiber);
        const atInterrupt = policy.decodeCalls();
        yield* Effect.sleep("300 millis");
        return { atInterrupt, later: policy.decodeCalls() };
      }).pipe(Effect.provide(Layer.merge(policyLayer(), echoEnvironment(1)))),
    );
    expect(counts.atInterrupt).toBeGreaterThanOrEqual(20);
    expect(counts.later).toBe(counts.atInterrupt);
  });
});
