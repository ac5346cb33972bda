import { it } from "@effect/vitest";
import { Environment, type Task } from "@workflow-r1/core";
import { Cause, Effect, Exit, Layer, Schema } from "effect";
import fc from "fast-check";
import { describe, expect } from "vitest";
import { ArithOptionsSchema, chainOf, environmentPlugin, resolveOptionsSync } from "../src/index.js";

/** An independent evaluator of the question's expression: parentheses first, then left to right. */
const evaluate = (text: string): number => {
  let expr = text;
  for (let inner = /\(([^()]*)\)/.exec(expr); inner; inner = /\(([^()]*)\)/.exec(expr))
    expr = expr.replace(inner[0], String(evaluate(inner[1])));
  const tokens = expr.match(/\d+|[+\-*]/g)!;
  let value = Number(tokens[0]);
  for (let i = 1; i < tokens.length; i += 2) {
    const b = Number(tokens[i + 1]);
    value = tokens[i] === "+" ? value + b : tokens[i] === "-" ? value - b : value * b;
  }
  return value;
};

const expressionIn = (task: Task) => /^Compute (.+)\. One <calc>/.exec(task.question)![1];

const optionsArb = fc.record({
  steps: fc.integer({ min: 1, max: 6 }),
  maxOperand: fc.integer({ min: 2, max: 99 }),
  // With `+` a chain can always go on; `-` or `*` alone may run out of range (tested below).
  ops: fc.subarray(["-", "*"] as const).map((ops) => ["+" as const, ...ops]),
});

describe("arith tasks", () => {
  it.effect("are deterministic per seed, differ across seeds, and train and eval never overlap", () =>
    Effect.gen(function* () {
      const a = yield* environmentPlugin.tasks({}, "train", 3);
      const b = yield* environmentPlugin.tasks({}, "train", 3);
      const c = yield* environmentPlugin.tasks({}, "train", 4);
      const evalTasks = yield* environmentPlugin.tasks({}, "eval", 3);
      expect(a).toEqual(b);
      expect(a.length).toBe(256);
      expect(evalTasks.length).toBe(64);
      expect(a.map((t) => t.question)).not.toEqual(c.map((t) => t.question));
      const train = new Set([...a, ...c].map(expressionIn));
      expect(evalTasks.filter((t) => train.has(expressionIn(t)))).toEqual([]);
      expect(new Set(a.map((t) => t.id)).size).toBe(a.length);
      expect(new Set(a.map(expressionIn)).size).toBe(a.length);
    }),
  );

  it("have short prompts, in-range values and golden answers equal to the expression's value", () =>
    fc.assert(
      fc.property(optionsArb, fc.nat(), (raw, seed) => {
        const options = { ...raw, maxValue: Math.max(99, raw.maxOperand * 2), trainSize: 16 };
        const tasks = Effect.runSync(environmentPlugin.tasks(options, "train", seed));
        for (const task of tasks) {
          expect(task.question.length).toBeLessThanOrEqual(150);
          const chain = chainOf(task)!;
          expect(chain.steps.length).toBe(raw.steps);
          expect(chain.steps.every((s) => raw.ops.includes(s.op) && s.operand <= raw.maxOperand)).toBe(true);
          expect(chain.values.every((v) => v >= 0 && v <= options.maxValue)).toBe(true);
          expect(task.goldenAnswers).toEqual([String(evaluate(expressionIn(task)))]);
        }
      }),
      { numRuns: 60 },
    ));

  it("demonstrations earn reward 1 and any turns earn a reward in [0, 1] with all three parts", () =>
    fc.assert(
      fc.property(
        optionsArb,
        fc.nat(),
        fc.array(
          fc.oneof(
            fc.string(),
            fc
              .tuple(fc.nat(120), fc.constantFrom("+", "-", "*"), fc.nat(120))
              .map(([a, op, b]) => `<calc>${a}${op}${b}</calc>`),
            fc.nat(200).map((n) => `<answer>${n}</answer>`),
          ),
          { maxLength: 8 },
        ),
        (raw, seed, turns) => {
          const options = { ...raw, maxValue: Math.max(99, raw.maxOperand * 2), trainSize: 1 };
          const program = Effect.gen(function* () {
            const [task] = yield* environmentPlugin.tasks(options, "train", seed);
            const environment = yield* Environment;
            const ideal = yield* environment.reset(task);
            let last: unknown;
            for (const turn of environmentPlugin.demonstrations!(task, options))
              last = yield* ideal.step(turn);
            expect(last).toMatchObject({ _tag: "Done", reward: 1 });
            const episode = yield* environment.reset(task);
            for (const turn of turns) {
              const result = yield* episode.step(turn);
              if (result._tag === "Done") return result;
            }
            return yield* episode.finish("max-tokens");
          }).pipe(Effect.provide(environmentPlugin.layer(options)));
          const outcome = Effect.runSync(program);
          expect(outcome.reward).toBeGreaterThanOrEqual(0);
          expect(outcome.reward).toBeLessThanOrEqual(1);
          expect(Object.keys(outcome.rewardParts).sort()).toEqual(["accuracy", "format", "progress"]);
        },
      ),
      { numRuns: 100 },
    ));

  it.effect("bad options fail with an EnvironmentError naming the field", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<[Record<string, unknown>, string]> = [
        [{ steps: 0 }, "environment.options.steps"],
        [{ steps: 2.5 }, "environment.options.steps"],
        [{ ops: ["/"] }, "environment.options.ops"],
        [{ ops: [] }, "environment.options.ops"],
        [{ maxOperand: 50, maxValue: 20 }, "maxValue"],
        [{ stepz: 2 }, "environment.options.stepz"],
        [{ steps: 3, maxTurns: 2 }, "environment.options.maxTurns"],
      ];
      for (const [options, field] of cases) {
        const layer = yield* Effect.exit(Layer.build(environmentPlugin.layer(options)).pipe(Effect.scoped));
        expect(Exit.isFailure(layer) && Cause.squash(layer.cause)).toMatchObject({
          _tag: "EnvironmentError",
          message: expect.stringContaining(field),
        });
        const tasks = yield* Effect.exit(environmentPlugin.tasks(options, "train", 0));
        expect(Exit.isFailure(tasks) && Cause.squash(tasks.cause)).toMatchObject({
          _tag: "EnvironmentError",
        });
      }
      expect(() => resolveOptionsSync({ steps: "2" })).toThrow(/expected an integer in \[1, 6\]/);
      // The plugin's Schema, which the trainer decodes environment.options with before a run.
      const decode = Schema.decodeUnknownSync(ArithOptionsSchema, { onExcessProperty: "error" });
      expect(decode({ steps: 3, ops: ["+", "*"] })).toEqual({ steps: 3, ops: ["+", "*"] });
      for (const bad of [{ stepz: 2 }, { steps: 7 }, { ops: ["/"] }, { maxOperand: 1.5 }])
        expect(() => decode(bad)).toThrow(Object.keys(bad)[0]);
      expect(environmentPlugin.optionsSchema).toBe(ArithOptionsSchema);
      // Valid options that no chain satisfies: 1 − 1 − 1 − 1 < 0.
      const none = yield* Effect.exit(
        environmentPlugin.tasks({ steps: 4, maxOperand: 1, ops: ["-"] }, "train", 0),
      );
      expect(Exit.isFailure(none) && Cause.squash(none.cause)).toMatchObject({
        _tag: "EnvironmentError",
        message: expect.stringContaining("no train task fits"),
      });
    }),
  );

  it.effect("the package's public entry exports a plugin the trainer accepts", () =>
    Effect.gen(function* () {
      // What `workflow-r1 train --env arith` does: import @workflow-r1/env-arith by name.
      const module = yield* Effect.promise(() => import("@workflow-r1/env-arith"));
      const plugin = module.environmentPlugin;
      expect(plugin.name).toBe("arith");
      expect(typeof plugin.layer).toBe("function");
      expect(typeof plugin.tasks).toBe("function");
      expect(typeof plugin.demonstrations).toBe("function");
      expect(plugin.description.length).toBeGreaterThan(10);
    }),
  );
});
