// Scripted episodes through the public plugin, exactly as the trainer drives them:
// plugin.tasks → plugin.layer → Environment.reset → step(turn)… → Done.
import { it } from "@effect/vitest";
import { Environment, type StepResult, type Task } from "@workflow-r1/core";
import { Cause, Effect, Exit, Layer } from "effect";
import { describe, expect } from "vitest";
import { environmentPlugin, parseAction } from "../src/index.js";

const options = { hops: 2 };

/** Play `turns` in order; return every step result (the last one must be Done). */
const play = (task: Task, turns: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const environment = yield* Environment;
    const episode = yield* environment.reset(task);
    const results: StepResult[] = [];
    for (const turn of turns) {
      const result = yield* episode.step(turn);
      results.push(result);
      if (result._tag === "Done") break;
    }
    return { episode, results, last: results[results.length - 1] };
  }).pipe(Effect.provide(environmentPlugin.layer(options)));

const firstTask = Effect.map(environmentPlugin.tasks(options, "train", 7), (tasks) => tasks[0]);

describe("arith environment", () => {
  it.effect("the demonstrations earn reward 1 on every task", () =>
    Effect.gen(function* () {
      const tasks = yield* environmentPlugin.tasks(options, "eval", 1);
      expect(tasks.length).toBe(64);
      for (const task of tasks.slice(0, 16)) {
        const turns = environmentPlugin.demonstrations!(task, options);
        expect(turns.length).toBe(options.hops + 1);
        const { results, last } = yield* play(task, turns);
        expect(results.slice(0, -1).every((r) => r._tag === "Observation")).toBe(true);
        expect(last).toMatchObject({ _tag: "Done", reward: 1, finishReason: "answer" });
        expect(last._tag === "Done" && last.rewardParts).toEqual({ accuracy: 1, format: 1 });
      }
    }),
  );

  it.effect("the observations show what each key holds", () =>
    Effect.gen(function* () {
      const task = yield* firstTask;
      const turns = environmentPlugin.demonstrations!(task, options);
      const { results } = yield* play(task, turns);
      const first = results[0];
      expect(first._tag).toBe("Observation");
      // The second demonstration turn looks up exactly the key the first observation revealed.
      const revealed = first._tag === "Observation" ? first.observation.replace(/<\/?info>/g, "") : "";
      expect(turns[1]).toBe(`<tool>lookup: ${revealed}</tool>`);
      expect(first.operatorCalls).toMatchObject([{ operator: "lookup", output: `<info>${revealed}</info>` }]);
    }),
  );

  it.effect("a wrong answer scores only the format part", () =>
    Effect.gen(function* () {
      const task = yield* firstTask;
      const { last } = yield* play(task, ["<answer>wrong</answer>"]);
      expect(last).toMatchObject({ _tag: "Done", reward: 0.1, rewardParts: { accuracy: 0, format: 1 } });
    }),
  );

  it.effect("malformed turns get an error observation and lower the format part", () =>
    Effect.gen(function* () {
      const task = yield* firstTask;
      const answer = task.goldenAnswers![0];
      const { results, last } = yield* play(task, ["I think", `<answer>${answer}</answer>`]);
      expect(results[0]).toMatchObject({ _tag: "Observation" });
      expect(results[0]._tag === "Observation" && results[0].observation).toContain("error");
      expect(last).toMatchObject({ _tag: "Done", rewardParts: { accuracy: 1, format: 0.5 } });
      expect(last._tag === "Done" && last.reward).toBeCloseTo(0.95, 12);
    }),
  );

  it.effect("the turn limit ends the episode with max-turns and reward 0", () =>
    Effect.gen(function* () {
      const task = yield* firstTask;
      const { results, last } = yield* play(task, Array(10).fill("<tool>lookup: zz9</tool>"));
      expect(results.length).toBe(options.hops + 2);
      expect(last).toMatchObject({ _tag: "Done", finishReason: "max-turns", reward: 0 });
    }),
  );

  it.effect("finish scores an unfinished episode, and a finished episode refuses more steps", () =>
    Effect.gen(function* () {
      const task = yield* firstTask;
      const { episode } = yield* play(task, ["<answer>x</answer>"]);
      const again = yield* Effect.exit(episode.step("<answer>x</answer>"));
      expect(Exit.isFailure(again) && Cause.squash(again.cause)).toMatchObject({ _tag: "EnvironmentError" });
      const fresh = yield* play(task, []);
      const outcome = yield* fresh.episode.finish("max-tokens");
      expect(outcome).toEqual({
        reward: 0,
        rewardParts: { accuracy: 0, format: 0 },
        finishReason: "max-tokens",
      });
    }),
  );

  it.effect("tasks are deterministic per seed and train and eval never overlap", () =>
    Effect.gen(function* () {
      const a = yield* environmentPlugin.tasks(options, "train", 3);
      const b = yield* environmentPlugin.tasks(options, "train", 3);
      const c = yield* environmentPlugin.tasks(options, "train", 4);
      const evalTasks = yield* environmentPlugin.tasks(options, "eval", 3);
      expect(a).toEqual(b);
      expect(a.map((t) => t.question)).not.toEqual(c.map((t) => t.question));
      const key = (t: Task) => JSON.stringify(t.metadata);
      const train = new Set([...a, ...c].map(key));
      expect(evalTasks.some((t) => train.has(key(t)))).toBe(false);
      expect(new Set(a.map((t) => t.id)).size).toBe(a.length);
    }),
  );

  it.effect("bad options fail with an EnvironmentError naming the field", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(Layer.build(environmentPlugin.layer({ hops: 0 })).pipe(Effect.scoped));
      expect(Exit.isFailure(exit) && Cause.squash(exit.cause)).toMatchObject({
        _tag: "EnvironmentError",
        message: expect.stringContaining("environment.options.hops"),
      });
      const tasks = yield* Effect.exit(environmentPlugin.tasks({ hopz: 2 }, "train", 0));
      expect(Exit.isFailure(tasks) && Cause.squash(tasks.cause)).toMatchObject({
        message: expect.stringContaining("hopz"),
      });
    }),
  );

  it("parses tool calls, answers and turns cut by the token budget", () => {
    expect(parseAction("<tool>lookup: ab</tool>")).toEqual({ _tag: "Tool", tool: "lookup", input: "ab" });
    expect(parseAction("<answer> 42 </answer>")).toEqual({ _tag: "Answer", answer: "42" });
    expect(parseAction("<tool>lookup: ab")).toEqual({ _tag: "Tool", tool: "lookup", input: "ab" });
    expect(parseAction("<tool>lookup ab</tool>")._tag).toBe("Invalid");
    expect(parseAction("")._tag).toBe("Invalid");
  });
});
