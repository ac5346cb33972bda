// Scripted episodes through the public plugin, exactly as the trainer drives them:
// plugin.tasks → plugin.layer → Environment.reset → step(turn)… → Done.
import { it } from "@effect/vitest";
import { Environment, type StepResult, type Task } from "@workflow-r1/core";
import { Cause, Effect, Exit } from "effect";
import { describe, expect } from "vitest";
import { chainOf, environmentPlugin, parseAction } from "../src/index.js";

const options = { steps: 3 };

/** Play `turns` in order until Done; return every step result. */
const play = (task: Task, turns: ReadonlyArray<string>, layerOptions: Record<string, unknown> = options) =>
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
  }).pipe(Effect.provide(environmentPlugin.layer(layerOptions)));

const firstTask = Effect.map(environmentPlugin.tasks(options, "train", 7), (tasks) => tasks[0]);
const chain = (task: Task) => chainOf(task)!;
const answerOf = (task: Task) => task.goldenAnswers![0];
const observationText = (result: StepResult) => (result._tag === "Observation" ? result.observation : "");

describe("arith environment: episodes", () => {
  it.effect("the demonstrations earn reward 1 for every chain length", () =>
    Effect.gen(function* () {
      for (const steps of [1, 2, 3, 4, 6]) {
        const stepOptions = { steps, evalSize: 8 };
        const tasks = yield* environmentPlugin.tasks(stepOptions, "eval", steps);
        expect(tasks.length).toBe(8);
        for (const task of tasks) {
          const turns = environmentPlugin.demonstrations!(task, stepOptions);
          expect(turns.length).toBe(steps + 1);
          const { results, last } = yield* play(task, turns, stepOptions);
          expect(results.slice(0, -1).every((r) => r._tag === "Observation")).toBe(true);
          expect(last).toMatchObject({ _tag: "Done", reward: 1, finishReason: "answer" });
          expect(last._tag === "Done" && last.rewardParts).toEqual({ accuracy: 1, progress: 1, format: 1 });
        }
      }
    }),
  );

  it.effect("each calculator result is the chain's next intermediate value", () =>
    Effect.gen(function* () {
      const task = yield* firstTask;
      const { results } = yield* play(task, environmentPlugin.demonstrations!(task, options));
      const shown = results.slice(0, -1).map(observationText);
      expect(shown).toEqual(chain(task).values.map((v) => `<result>${v}</result>`));
      expect(results[0].operatorCalls).toMatchObject([{ operator: "calc", output: shown[0] }]);
    }),
  );

  it.effect("the calculator computes what it is asked, right or wrong for the task", () =>
    Effect.gen(function* () {
      const task = yield* firstTask;
      const { results } = yield* play(task, ["<calc>12*11</calc>", "<calc> 40 - 2 </calc>", "<calc>3+4"]);
      expect(results.map(observationText)).toEqual([
        "<result>132</result>",
        "<result>38</result>",
        "<result>7</result>",
      ]);
    }),
  );

  it.effect("right steps but a wrong answer earn progress and format only", () =>
    Effect.gen(function* () {
      const task = yield* firstTask;
      const turns = environmentPlugin.demonstrations!(task, options).slice(0, -1);
      const { last } = yield* play(task, [...turns, `<answer>${Number(answerOf(task)) + 1}</answer>`]);
      expect(last).toMatchObject({ _tag: "Done", rewardParts: { accuracy: 0, progress: 1, format: 1 } });
      expect(last._tag === "Done" && last.reward).toBeCloseTo(0.2, 12);
    }),
  );

  it.effect("a right answer without the calculator earns accuracy and format, no progress", () =>
    Effect.gen(function* () {
      const task = yield* firstTask;
      const { last } = yield* play(task, [`<answer>${answerOf(task)}</answer>`]);
      expect(last).toMatchObject({ rewardParts: { accuracy: 1, progress: 0, format: 1 } });
      expect(last._tag === "Done" && last.reward).toBeCloseTo(0.9, 12);
    }),
  );

  it.effect("progress counts the chain's steps computed in order, skipping stray calls", () =>
    Effect.gen(function* () {
      const task = yield* firstTask;
      const [first, second] = environmentPlugin.demonstrations!(task, options);
      // first step, a stray call, the second step again in order, then a wrong answer
      const { last } = yield* play(task, [first, "<calc>1+1</calc>", second, "<answer>x</answer>"], {
        ...options,
        maxTurns: 6,
      });
      expect(last).toMatchObject({ rewardParts: { accuracy: 0, progress: 2 / 3, format: 1 } });
      // the second step before the first does not count
      const { last: swapped } = yield* play(task, [second, first, "<answer>x</answer>"]);
      expect(swapped).toMatchObject({ rewardParts: { progress: 1 / 3 } });
    }),
  );

  it.effect("+ and * accept either operand order, - does not", () =>
    Effect.gen(function* () {
      const [add] = yield* environmentPlugin.tasks({ steps: 1, ops: ["+"], trainSize: 1 }, "train", 3);
      const [sub] = yield* environmentPlugin.tasks({ steps: 1, ops: ["-"], trainSize: 1 }, "train", 3);
      const flipped = (task: Task) => {
        const c = chain(task);
        return `<calc>${c.steps[0].operand}${c.steps[0].op}${c.start}</calc>`;
      };
      const one = { steps: 1 };
      const a = yield* play(add, [flipped(add), "<answer>0</answer>"], one);
      expect(a.last).toMatchObject({ rewardParts: { progress: 1 } });
      const s = yield* play(sub, [flipped(sub), "<answer>0</answer>"], one);
      expect(s.last).toMatchObject({ rewardParts: { progress: 0 } });
    }),
  );

  it.effect("malformed turns get an error observation and lower the format part", () =>
    Effect.gen(function* () {
      const task = yield* firstTask;
      const { results, last } = yield* play(task, [
        "let me think",
        "<calc>2+3+4</calc>",
        `<answer>${answerOf(task)}</answer>`,
      ]);
      expect(observationText(results[0])).toContain("error: expected <calc>");
      expect(observationText(results[1])).toContain("error: expected one operation");
      expect(results[1].operatorCalls).toEqual([]);
      expect(last).toMatchObject({ rewardParts: { accuracy: 1, progress: 0, format: 1 / 3 } });
    }),
  );

  it.effect("the turn limit ends the episode with max-turns; partial progress still counts", () =>
    Effect.gen(function* () {
      const task = yield* firstTask;
      const [first] = environmentPlugin.demonstrations!(task, options);
      const { results, last } = yield* play(task, [first, ...Array(10).fill("<calc>1+1</calc>")]);
      expect(results.length).toBe(options.steps + 2);
      expect(last).toMatchObject({
        _tag: "Done",
        finishReason: "max-turns",
        rewardParts: { accuracy: 0, progress: 1 / 3, format: 0 },
      });
      expect(last._tag === "Done" && last.reward).toBeCloseTo(0.1 / 3, 12);
    }),
  );

  it.effect("finish scores an unfinished episode; a finished one refuses more steps", () =>
    Effect.gen(function* () {
      const task = yield* firstTask;
      const { episode } = yield* play(task, ["<answer>1</answer>"]);
      const again = yield* Effect.exit(episode.step("<answer>1</answer>"));
      expect(Exit.isFailure(again) && Cause.squash(again.cause)).toMatchObject({ _tag: "EnvironmentError" });
      const fresh = yield* play(task, [environmentPlugin.demonstrations!(task, options)[0]]);
      const outcome = yield* fresh.episode.finish("max-tokens");
      expect(outcome).toEqual({
        reward: 0.1 / 3,
        rewardParts: { accuracy: 0, progress: 1 / 3, format: 0 },
        finishReason: "max-tokens",
      });
    }),
  );

  it.effect("a task from elsewhere fails reset with an EnvironmentError", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(play({ id: "qa-1", question: "Who?" }, []));
      expect(Exit.isFailure(exit) && Cause.squash(exit.cause)).toMatchObject({
        _tag: "EnvironmentError",
        message: expect.stringContaining("qa-1"),
      });
    }),
  );

  it.effect("stop sequences end a turn at its tool call or answer", () =>
    Effect.gen(function* () {
      const environment = yield* Effect.provide(Environment, environmentPlugin.layer({}));
      expect(environment.stopSequences).toEqual(["</calc>", "</answer>"]);
      expect(environment.name).toBe("arith");
    }),
  );
});

describe("arith environment: actions", () => {
  it.effect("parses calculator calls, answers and turns cut by the token budget", () =>
    Effect.sync(() => {
      expect(parseAction("<calc>7+5</calc>")).toEqual({ _tag: "Calc", calculation: { a: 7, op: "+", b: 5 } });
      expect(parseAction("ok <calc> 12 * 3 </calc>")).toEqual({
        _tag: "Calc",
        calculation: { a: 12, op: "*", b: 3 },
      });
      expect(parseAction("<answer> 21 </answer>")).toEqual({ _tag: "Answer", answer: "21" });
      expect(parseAction("<calc>9-4")).toEqual({ _tag: "Calc", calculation: { a: 9, op: "-", b: 4 } });
      expect(parseAction("<calc>9/4</calc>")._tag).toBe("Invalid");
      expect(parseAction("<calc>-3+4</calc>")._tag).toBe("Invalid");
      expect(parseAction("")._tag).toBe("Invalid");
    }),
  );
});
