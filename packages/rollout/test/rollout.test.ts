import { segmentCount, type Trajectory, validateTrajectory } from "@workflow-r1/core";
import { SyntheticQAEnv, syntheticDemonstrations, syntheticTasks } from "@workflow-r1/env-synthetic";
import { Effect, Fiber, Layer, Stream } from "effect";
import { describe, expect, it } from "vitest";
import { type RolloutOptions, rollout, rolloutStream } from "../src/index.js";
import {
  decode,
  logprobOf,
  type ScriptContext,
  scriptedEnvironment,
  scriptedPolicy,
  tasks,
} from "./scripted.js";

const questionOf = (ctx: ScriptContext) => /\[user\](.*?)<eot>/.exec(ctx.prompt)?.[1] ?? "";
const indexOf = (ctx: ScriptContext) => Number(/q(\d+)/.exec(questionOf(ctx))?.[1] ?? "0");

/** Turn 0 searches, turn 1 answers correctly (then the model's own end-of-turn token). */
const searchThenAnswer = (ctx: ScriptContext) =>
  ctx.call === 0
    ? { text: `think<tool>w${indexOf(ctx)}</tool>` }
    : { text: `<answer>a${indexOf(ctx)}</answer>`, eot: true };

const base: RolloutOptions = { groupSize: 2, maxConcurrentEpisodes: 4, maxTurns: 4, maxTokens: 200 };

const run = <E>(
  policy: ReturnType<typeof scriptedPolicy>,
  env: ReturnType<typeof scriptedEnvironment>,
  t: ReturnType<typeof tasks>,
  options: RolloutOptions<E> = base as RolloutOptions<E>,
) => Effect.runPromise(rollout(t, options).pipe(Effect.provide(Layer.merge(policy.layer, env.layer))));

const all = (groups: ReadonlyArray<{ trajectories: ReadonlyArray<Trajectory> }>) =>
  groups.flatMap((g) => g.trajectories);

describe("rollout assembly", () => {
  it("keeps sampled tokens and logprobs exactly, masks observations, one segment per turn", async () => {
    const policy = scriptedPolicy({ script: searchThenAnswer, delayMs: 1 });
    const env = scriptedEnvironment();
    const { groups, metrics } = await run(policy, env, tasks(3));
    expect(groups.map((g) => g.groupId)).toEqual(["0:t0", "1:t1", "2:t2"]);
    for (const [i, group] of groups.entries()) {
      expect(group.trajectories).toHaveLength(2);
      for (const tr of group.trajectories) {
        validateTrajectory(tr);
        expect(tr.groupId).toBe(group.groupId);
        expect(tr.taskId).toBe(`t${i}`);
        expect(tr.finishReason).toBe("answer");
        expect(tr.reward).toBe(1);
        expect(tr.error).toBeUndefined();
        expect(tr.turns).toHaveLength(2);
        expect(segmentCount(tr.segments)).toBe(2);
        expect(decode(tr.tokens.subarray(0, tr.promptLength))).toBe(
          `[system]sys<eot>[user]q${i}<eot>[assistant]`,
        );
        // Sampled positions: exactly the scripted text, with the scripted logprobs.
        const sampled: number[] = [];
        const logprobs: number[] = [];
        for (let p = 0; p < tr.tokens.length; p++)
          if (tr.mask[p] === 1) {
            sampled.push(tr.tokens[p]!);
            logprobs.push(tr.samplerLogprobs[p]!);
          } else expect(tr.samplerLogprobs[p]).toBeNaN();
        const expectedText = `think<tool>w${i}</tool><answer>a${i}</answer>`;
        expect(decode(sampled)).toBe(`${expectedText}<eot>`);
        const turn1 = decode(sampled).indexOf("<answer>");
        const expectedLogprobs = [
          ...Array.from(sampled.slice(0, turn1), (t, k) => logprobOf(t, k)),
          ...Array.from(sampled.slice(turn1), (t, k) => logprobOf(t, k)),
        ];
        expect(logprobs).toEqual(Array.from(Float32Array.from(expectedLogprobs)));
        // The observation is wrapped once by renderContinuation (closing the turn: no EOT was sampled).
        const between = Array.from(tr.tokens).filter((_, p) => p >= tr.promptLength && tr.mask[p] === 0);
        expect(decode(between)).toBe(`<eot>[tool]result(w${i})<eot>[assistant]`);
        expect(tr.turns[0]!.observation).toBe(`result(w${i})`);
        expect(tr.turns[0]!.operatorCalls[0]).toMatchObject({ operator: "search", input: `w${i}` });
        expect(tr.turns[1]!.observation).toBeUndefined();
        expect(tr.turns[1]!.action).toBe(`<answer>a${i}</answer>`); // without the end-of-turn token
        expect(tr.turns.map((t) => t.sampledTokens)).toEqual([
          `think<tool>w${i}</tool>`.length,
          `<answer>a${i}</answer>`.length + 1,
        ]);
      }
    }
    // Token in, token out: every trajectory's sampled tokens are the policy's generations, in order.
    const fromPolicy = policy.generations.flatMap((g) => Array.from(g.generation.tokens));
    expect(fromPolicy.length).toBe(metrics.sampledTokens);
    expect(metrics.episodes).toBe(6);
    expect(metrics.generateCalls).toBe(12);
    expect(metrics.finishReasons).toEqual({ answer: 6 });
    expect(metrics.meanTurnsPerEpisode).toBe(2);
    expect(metrics.meanBatchOccupancy).toBeGreaterThan(1);
    expect(metrics.meanBatchOccupancy).toBeLessThanOrEqual(4);
  });

  it("appends each observation at the next generate, as tokens in the policy's own order", async () => {
    const policy = scriptedPolicy({ script: searchThenAnswer });
    const env = scriptedEnvironment();
    const { groups } = await run(policy, env, tasks(1), { ...base, groupSize: 1 });
    const tr = groups[0]!.trajectories[0]!;
    const [first, second] = policy.generations;
    expect(first!.append).toHaveLength(0);
    const rebuilt = [
      ...tr.tokens.subarray(0, tr.promptLength),
      ...first!.generation.tokens,
      ...second!.append,
      ...second!.generation.tokens,
    ];
    expect(Array.from(tr.tokens)).toEqual(rebuilt);
  });

  it("ends at maxTokens without executing the cut action, and at maxTurns", async () => {
    const policy = scriptedPolicy({
      script: (ctx) =>
        questionOf(ctx) === "long" ? { text: "x".repeat(100) } : { text: "<tool>again</tool>" },
    });
    const env = scriptedEnvironment();
    const t = [
      { id: "long", question: "long" },
      { id: "loop", question: "loop" },
    ];
    const { groups } = await run(policy, env, t, { ...base, groupSize: 1, maxTokens: 60, maxTurns: 3 });
    const [long, loop] = all(groups);
    expect(long!.finishReason).toBe("max-tokens");
    expect(long!.tokens.length - long!.promptLength).toBe(60);
    expect(long!.turns).toHaveLength(1);
    expect(long!.turns[0]!.operatorCalls).toHaveLength(0);
    expect(loop!.finishReason).toBe("max-turns");
    expect(loop!.turns).toHaveLength(3);
    expect(segmentCount(loop!.segments)).toBe(3);
    expect(env.stats.finishes.sort()).toEqual(["long:max-tokens", "loop:max-turns"]);
    for (const tr of all(groups)) validateTrajectory(tr);
  });

  it("passes the remaining token budget and the environment's stop strings to generate", async () => {
    const seen: Array<{ maxTokens: number; stop: ReadonlyArray<string> | undefined }> = [];
    const policy = scriptedPolicy({
      script: (ctx) => {
        seen.push({ maxTokens: ctx.options.maxTokens, stop: ctx.options.stop });
        return ctx.call < 2 ? { text: "<tool>abc</tool>" } : { text: "<answer>a0</answer>" };
      },
    });
    await run(policy, scriptedEnvironment(), tasks(1), {
      ...base,
      groupSize: 1,
      maxTokens: 40,
      maxTokensPerTurn: 30,
      sampling: { stop: ["STOP"], temperature: 1 },
    });
    expect(seen.map((s) => s.maxTokens)).toEqual([30, 40 - 16, 40 - 32]);
    expect(seen[0]!.stop).toEqual(["</tool>", "</answer>", "STOP"]);
  });
});

describe("rollout with SyntheticQAEnv and a scripted policy that follows the demonstrations", () => {
  it("one segment per Think-Action cycle, observations from the Search operator, reward 1", async () => {
    const synthetic = syntheticTasks({ count: 3, seed: 5, difficulty: 2 });
    const demos = new Map(synthetic.map((t) => [`Query: ${t.question}`, syntheticDemonstrations(t)]));
    const policy = scriptedPolicy({
      script: (ctx) => {
        const question = /\[user\](.*?)<eot>/.exec(ctx.prompt)?.[1] ?? "";
        return { text: demos.get(question)![ctx.call]!, eot: true };
      },
      delayMs: 1,
    });
    const { groups } = await Effect.runPromise(
      rollout(synthetic, { ...base, groupSize: 2 }).pipe(
        Effect.provide(Layer.merge(policy.layer, Layer.orDie(SyntheticQAEnv.layer({ difficulty: 2 })))),
      ),
    );
    for (const tr of all(groups)) {
      validateTrajectory(tr);
      expect(tr.error).toBeUndefined();
      expect(tr.finishReason).toBe("answer");
      expect(tr.reward).toBeGreaterThan(0.9);
      expect(tr.turns).toHaveLength(3);
      expect(segmentCount(tr.segments)).toBe(3);
      expect(tr.turns[0]!.observation).toMatch(/ of .* is /);
      expect(tr.turns[0]!.operatorCalls.length).toBeGreaterThan(0);
    }
  });
});

describe("rollout scheduling", () => {
  it("never has more than maxConcurrentEpisodes live, and fills that bound", async () => {
    const policy = scriptedPolicy({ script: searchThenAnswer, delayMs: 2 });
    const env = scriptedEnvironment({ operatorMs: () => 3 });
    const { groups, metrics } = await run(policy, env, tasks(10), { ...base, maxConcurrentEpisodes: 3 });
    expect(all(groups)).toHaveLength(20);
    expect(policy.stats.maxOpen).toBe(3);
    expect(metrics.maxLiveEpisodes).toBe(3);
    expect(policy.stats.open).toBe(0);
    expect(metrics.maxBatchOccupancy).toBeLessThanOrEqual(3);
  });

  it("keeps sampling other episodes while one waits for a slow operator", async () => {
    const merged: string[] = [];
    const policy = scriptedPolicy({ script: searchThenAnswer, delayMs: 1, events: merged });
    const env = scriptedEnvironment({ operatorMs: (task) => (task.id === "t0" ? 400 : 0), events: merged });
    await run(policy, env, tasks(4), { ...base, groupSize: 1 });
    const start = merged.indexOf("op-start t0");
    const end = merged.indexOf("op-end t0");
    expect(start).toBeGreaterThanOrEqual(0);
    const generatesDuring = merged.slice(start, end).filter((e) => e.startsWith("gen-end")).length;
    expect(generatesDuring).toBeGreaterThanOrEqual(6); // the 3 other episodes' two turns each
  });

  it("bounds concurrent operator calls by maxConcurrentOperators", async () => {
    const policy = scriptedPolicy({ script: searchThenAnswer });
    const env = scriptedEnvironment({ operatorMs: () => 20 });
    await run(policy, env, tasks(8), {
      ...base,
      groupSize: 1,
      maxConcurrentEpisodes: 8,
      maxConcurrentOperators: 2,
    });
    expect(env.stats.maxOperatorsRunning).toBe(2);
  });

  it("calls generate concurrently for all live episodes (one batch for the policy)", async () => {
    const policy = scriptedPolicy({ script: searchThenAnswer, delayMs: 5 });
    const { metrics } = await run(policy, scriptedEnvironment(), tasks(4), {
      ...base,
      groupSize: 2,
      maxConcurrentEpisodes: 8,
    });
    expect(policy.stats.maxInFlight).toBe(8);
    expect(metrics.maxBatchOccupancy).toBe(8);
  });

  it("streams trajectories as episodes finish (onTrajectory and rolloutStream)", async () => {
    const seen: string[] = [];
    const policy = scriptedPolicy({
      script: searchThenAnswer,
      delayMs: (ctx) => (indexOf(ctx) === 0 ? 200 : 1),
    });
    const { groups } = await run(policy, scriptedEnvironment(), tasks(3), {
      ...base,
      onTrajectory: (t) => Effect.sync(() => seen.push(t.taskId)),
    });
    expect(seen).toHaveLength(6);
    expect(seen.slice(-2)).toEqual(["t0", "t0"]); // slow episodes are emitted last, not in task order
    expect(groups[0]!.trajectories.map((t) => t.taskId)).toEqual(["t0", "t0"]);

    const streamed = await Effect.runPromise(
      Stream.runCollect(rolloutStream(tasks(3), base)).pipe(
        Effect.provide(
          Layer.merge(scriptedPolicy({ script: searchThenAnswer }).layer, scriptedEnvironment().layer),
        ),
      ),
    );
    expect(
      Array.from(streamed)
        .map((t) => t.taskId)
        .sort(),
    ).toEqual(["t0", "t0", "t1", "t1", "t2", "t2"]);
  });

  it("rejects invalid options with the offending field", async () => {
    const policy = scriptedPolicy({ script: searchThenAnswer });
    await expect(
      run(policy, scriptedEnvironment(), tasks(1), { ...base, groupSize: 0 }),
    ).rejects.toMatchObject({
      _tag: "RolloutOptionsError",
      field: "groupSize",
    });
  });
});

describe("rollout failures become flagged trajectories", () => {
  it("policy error, context overflow (thrown or reached), environment errors", async () => {
    const policy = scriptedPolicy({
      script: (ctx) => {
        const q = questionOf(ctx);
        if (q === "policy-fail" && ctx.call === 1) return { fail: "policy" };
        if (q === "overflow" && ctx.call === 1) return { fail: "overflow" };
        if (q === "full") return { text: "xy", finishReason: "context" };
        return searchThenAnswer(ctx);
      },
    });
    const env = scriptedEnvironment();
    const t = [
      { id: "ok", question: "q0", goldenAnswers: ["a0"] },
      { id: "p", question: "policy-fail" },
      { id: "o", question: "overflow" },
      { id: "f", question: "full" },
      { id: "r", question: "reset-fail" },
      { id: "s", question: "step-fail" },
    ];
    const { groups, metrics } = await run(policy, env, t, { ...base, groupSize: 1 });
    const by = Object.fromEntries(all(groups).map((tr) => [tr.taskId, tr]));
    for (const tr of all(groups)) validateTrajectory(tr);
    expect(by.ok!.finishReason).toBe("answer");
    expect(by.ok!.error).toBeUndefined();
    expect(by.p!.finishReason).toBe("error");
    expect(by.p!.error).toMatch(/^PolicyError: scripted policy failure/);
    expect(by.p!.turns).toHaveLength(1); // the first turn is kept
    expect(by.o!.finishReason).toBe("context-overflow");
    expect(by.o!.error).toMatch(/^ContextOverflowError/);
    expect(by.f!.finishReason).toBe("context-overflow");
    expect(by.f!.turns).toHaveLength(1);
    expect(by.r!.finishReason).toBe("error");
    expect(by.r!.error).toMatch(/^EnvironmentError: scripted reset failure/);
    expect(by.r!.tokens).toHaveLength(0);
    expect(by.s!.finishReason).toBe("error");
    expect(by.s!.error).toMatch(/scripted step failure/);
    expect(by.s!.tokens.length).toBeGreaterThan(by.s!.promptLength);
    expect(metrics.finishReasons).toEqual({ answer: 1, error: 3, "context-overflow": 2 });
    expect(policy.stats.open).toBe(0);
  });

  it("flags an episode whose policy sequence does not hold the trajectory's tokens", async () => {
    const policy = scriptedPolicy({ script: searchThenAnswer, lieAboutTokens: true });
    const { groups } = await run(policy, scriptedEnvironment(), tasks(1), { ...base, groupSize: 1 });
    const tr = groups[0]!.trajectories[0]!;
    expect(tr.finishReason).toBe("error");
    expect(tr.error).toMatch(/^TokenPrefixError/);
  });

  it("ends an episode past its deadline as cancelled and closes its sequence", async () => {
    // Episode 1 samples slowly (the deadline takes effect when its generate returns); episode 2
    // waits on a slow operator (interrupted at once).
    const policy = scriptedPolicy({
      script: searchThenAnswer,
      delayMs: (ctx) => (indexOf(ctx) === 1 ? 600 : 1),
    });
    const env = scriptedEnvironment({ operatorMs: (task) => (task.id === "t2" ? 10_000 : 0) });
    const { groups } = await run(policy, env, tasks(3), {
      ...base,
      groupSize: 1,
      episodeTimeout: "250 millis",
    });
    const [fast, slow, stuck] = all(groups);
    expect(fast!.finishReason).toBe("answer");
    for (const t of [slow!, stuck!]) {
      expect(t.finishReason).toBe("cancelled");
      expect(t.error).toMatch(/^EpisodeDeadlineError: .* 250 ms/);
      validateTrajectory(t);
    }
    expect(stuck!.turns).toHaveLength(0); // its first action was sampled, its step never returned
    expect(stuck!.tokens.length).toBeGreaterThan(stuck!.promptLength);
    expect(env.stats.operatorsRunning).toBe(0);
    expect(policy.stats.open).toBe(0);
    expect(policy.stats.inFlight).toBe(0);
  });

  it("with interruptibleGenerate a deadline cuts a generate in flight", async () => {
    const policy = scriptedPolicy({ script: searchThenAnswer, delayMs: 10_000 });
    const { groups } = await run(policy, scriptedEnvironment(), tasks(1), {
      ...base,
      groupSize: 1,
      episodeTimeout: "50 millis",
      interruptibleGenerate: true,
    });
    expect(groups[0]!.trajectories[0]!.finishReason).toBe("cancelled");
    expect(policy.stats.inFlight).toBe(0);
    expect(policy.stats.open).toBe(0);
  });

  it("interrupting a rollout leaves no generate running and no sequence open", async () => {
    // The interrupt waits for the generates in flight (they are uninterruptible by default).
    const policy = scriptedPolicy({ script: searchThenAnswer, delayMs: 200 });
    const env = scriptedEnvironment();
    const program = Effect.gen(function* () {
      const fiber = yield* Effect.forkChild(rollout(tasks(4), base));
      yield* Effect.sleep("50 millis");
      const before = { open: policy.stats.open, inFlight: policy.stats.inFlight };
      yield* Fiber.interrupt(fiber);
      return before;
    }).pipe(Effect.provide(Layer.merge(policy.layer, env.layer)));
    const before = await Effect.runPromise(program);
    expect(before).toEqual({ open: 4, inFlight: 4 });
    expect(policy.stats.inFlight).toBe(0);
    expect(policy.stats.open).toBe(0);
  });
});

describe("episodeSeed", () => {
  it("gives each episode and turn of a rollout its own reproducible seed", async () => {
    const { episodeSeed } = await import("../src/index.js");
    const seeds = new Set<number>();
    for (let e = 0; e < 64; e++) for (let t = 0; t < 4; t++) seeds.add(episodeSeed(42, e, t));
    expect(seeds.size).toBe(256);
    expect(episodeSeed(42, 3, 1)).toBe(episodeSeed(42, 3, 1));
    expect(episodeSeed(42, 3, 1)).not.toBe(episodeSeed(43, 3, 1));
    for (const s of seeds) expect(s >= 0 && s < 2 ** 31).toBe(true);
  });
});
