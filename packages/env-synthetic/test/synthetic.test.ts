import { Environment, type EnvironmentShape, type StepResult, type Task } from "@workflow-r1/core";
import { Effect, Exit } from "effect";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  environmentPlugin,
  type SyntheticQAConfig,
  SyntheticQAEnv,
  SyntheticQAOptions,
  type SyntheticWorld,
  syntheticChain,
  syntheticDemonstrations,
  syntheticSearch,
  syntheticTasks,
} from "../src/index.js";

const run = <A>(config: SyntheticQAConfig, body: (env: EnvironmentShape) => Effect.Effect<A, unknown>) =>
  Effect.runPromise(
    Effect.gen(function* () {
      return yield* body(yield* Environment);
    }).pipe(Effect.provide(SyntheticQAEnv.layer(config))) as Effect.Effect<A>,
  );

/** Drive an episode with scripted assistant turns. */
const drive = (env: EnvironmentShape, task: Task, turns: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const episode = yield* env.reset(task);
    const results: StepResult[] = [];
    for (const turn of turns) {
      const result = yield* episode.step(turn);
      results.push(result);
      if (result._tag === "Done") return { episode, results };
    }
    return { episode, results };
  });

describe("synthetic tasks", () => {
  it("are deterministic per seed, differ across seeds, and train/eval are disjoint", () => {
    const a = syntheticTasks({ count: 20, seed: 7 });
    expect(syntheticTasks({ count: 20, seed: 7 })).toEqual(a);
    expect(syntheticTasks({ count: 20, seed: 8 })).not.toEqual(a);
    const evalIds = new Set(syntheticTasks({ count: 20, seed: 7, split: "eval" }).map((t) => t.question));
    expect(a.filter((t) => evalIds.has(t.question)).length).toBeLessThan(3);
  });

  it.each([1, 2, 3, 4])("difficulty %i: question chains that many relations over short names", (hops) => {
    for (const task of syntheticTasks({ count: 50, seed: 1, difficulty: hops })) {
      const world = task.metadata?.["synthetic"] as SyntheticWorld;
      expect(world.relations).toHaveLength(hops);
      expect(task.question.split(" of ")).toHaveLength(hops + 1);
      expect(task.goldenAnswers?.[0]).toMatch(/^[a-z]{3}$/);
      expect(syntheticChain(world).at(-1)).toBe(task.goldenAnswers?.[0]);
    }
  });

  it("answers are spread over the world's names (no constant guess wins)", () => {
    const tasks = syntheticTasks({ count: 400, seed: 3 });
    const counts = new Map<string, number>();
    for (const t of tasks)
      counts.set(t.goldenAnswers?.[0] ?? "", (counts.get(t.goldenAnswers?.[0] ?? "") ?? 0) + 1);
    expect(Math.max(...counts.values()) / tasks.length).toBeLessThan(0.05);
    // Guessing the start name (the only name in the question) is rarely right.
    const startRight = tasks.filter(
      (t) => (t.metadata?.["synthetic"] as SyntheticWorld | undefined)?.start === t.goldenAnswers?.[0],
    );
    expect(startRight.length / tasks.length).toBeLessThan(0.35);
  });
});

describe("syntheticSearch", () => {
  const world: SyntheticWorld = {
    facts: { "boss of kob": "dax", "pal of dax": "vel" },
    start: "kob",
    relations: ["boss", "pal"],
  };
  it.each([
    ["boss of kob", "boss of kob is dax"],
    ["  Pal of DAX ", "pal of dax is vel"],
    ["boss of zzz", "no entry for zzz"],
    ["mom of kob", "unknown relation mom; use boss, pal, kin"],
    ["kob", "Search needs: relation of name (e.g. boss of kob)"],
    ["", "Search needs: relation of name (e.g. boss of kob)"],
  ])("%j -> %j", (input, expected) => {
    expect(syntheticSearch(world, input)).toBe(expected);
  });
});

describe("SyntheticQAEnv episodes", () => {
  it.each([1, 2, 3])("the demonstrations of difficulty %i solve every task with reward 1", async (hops) => {
    const tasks = syntheticTasks({ count: 30, seed: 11, difficulty: hops });
    const outcomes = await run({ difficulty: hops }, (env) =>
      Effect.forEach(tasks, (task) => {
        const demo = syntheticDemonstrations(task);
        expect(demo).toHaveLength(hops + 1);
        return Effect.map(drive(env, task, demo), ({ results }) => results);
      }),
    );
    for (const results of outcomes) {
      expect(results.map((r) => r._tag)).toEqual([...Array(hops).fill("Observation"), "Done"]);
      expect(results.at(-1)).toMatchObject({ reward: 1, finishReason: "answer" });
    }
  });

  it("long episodes: difficulty ranges draw the hops per task, distractors lengthen observations unequally", async () => {
    const fixed = syntheticTasks({ count: 20, seed: 3, difficulty: 2 });
    // A fixed difficulty keeps the task stream it always had (the default run depends on it).
    expect(fixed.map((t) => t.id)).toEqual(syntheticTasks({ count: 20, seed: 3 }).map((t) => t.id));
    const tasks = syntheticTasks({ count: 60, seed: 3, difficulty: [6, 10] });
    const hops = tasks.map(
      (t) => (t.metadata?.["synthetic"] as SyntheticWorld | undefined)?.relations.length ?? 0,
    );
    expect(Math.min(...hops)).toBe(6);
    expect(Math.max(...hops)).toBe(10);
    const config = { difficulty: [6, 10], distractors: [0, 6] } as const;
    const outcomes = await run(config, (env) =>
      Effect.forEach(tasks.slice(0, 10), (task) =>
        Effect.map(drive(env, task, syntheticDemonstrations(task)), ({ results }) => ({ task, results })),
      ),
    );
    const lengths: number[] = [];
    for (const { task, results } of outcomes) {
      const world = task.metadata?.["synthetic"] as SyntheticWorld;
      const chain = syntheticChain(world);
      // Every hop's observation holds its fact among 0–6 others; the demonstrations still solve it.
      results.slice(0, -1).forEach((r, i) => {
        const observation = r._tag === "Observation" ? r.observation : "";
        const from = i === 0 ? world.start : chain[i - 1];
        expect(observation).toContain(`${world.relations[i]} of ${from} is ${chain[i]}`);
        const facts = observation.slice("<info>".length, -"</info>".length).split("; ");
        expect(facts.length).toBeGreaterThanOrEqual(1);
        expect(facts.length).toBeLessThanOrEqual(7);
        lengths.push(observation.length);
      });
      expect(results.at(-1)).toMatchObject({ reward: 1 });
    }
    expect(Math.max(...lengths)).toBeGreaterThan(3 * Math.min(...lengths));
    // The same episode gets the same observations.
    const again = await run(config, (env) => drive(env, tasks[0]!, syntheticDemonstrations(tasks[0]!)));
    const observations = (results: ReadonlyArray<{ _tag: string }>) =>
      results.map((r) => ("observation" in r ? r.observation : r._tag));
    expect(observations(again.results)).toEqual(observations(outcomes[0]!.results));
    // fact-last: the looked-up fact always ends the observation.
    const first = await run({ ...config, distractorOrder: "fact-last" }, (env) =>
      drive(env, tasks[1]!, syntheticDemonstrations(tasks[1]!)),
    );
    const world = tasks[1]!.metadata?.["synthetic"] as SyntheticWorld;
    const chain = syntheticChain(world);
    first.results.slice(0, -1).forEach((r, i) => {
      const from = i === 0 ? world.start : chain[i - 1];
      expect("observation" in r && r.observation).toMatch(
        new RegExp(`(<info>|; )${world.relations[i]} of ${from} is ${chain[i]}</info>$`),
      );
    });
  });

  it("observations carry the looked-up fact; compact prompt by default, full on request", async () => {
    const [task] = syntheticTasks({ count: 1, seed: 5 });
    if (!task) throw new Error("no task");
    const demo = syntheticDemonstrations(task);
    const world = task.metadata?.["synthetic"] as SyntheticWorld;
    const { results, episode } = await run({}, (env) => drive(env, task, demo));
    const first = results[0];
    const fact = `${world.relations[0]} of ${world.start} is ${syntheticChain(world)[0]}`;
    expect(first?._tag === "Observation" && first.observation).toBe(`<info>${fact}</info>`);
    expect(first?._tag === "Observation" && first.operatorCalls[0]).toMatchObject({
      operator: "Search",
      output: fact,
    });
    expect(episode.messages).toEqual([{ role: "user", content: `Query: ${task.question}` }]);
    const full = await run({ prompt: "full", operatorBudget: 5 }, (env) => env.reset(task));
    expect(full.messages[0]?.role).toBe("system");
    expect(full.messages[1]?.content).toContain("<tool>Search: relation of name</tool>");
    expect(full.messages[1]?.content).toContain("at most 5 times");
  });

  it("answering without looking up, guessing wrong, or skipping think is scored accordingly", async () => {
    const [task] = syntheticTasks({ count: 1, seed: 9 });
    if (!task) throw new Error("no task");
    const golden = task.goldenAnswers?.[0] ?? "";
    const outcome = (turns: string[]) =>
      run({}, (env) => Effect.map(drive(env, task, turns), ({ results }) => results.at(-1)));
    // Right answer with valid format but no lookups: still full reward (the reward checks the answer).
    expect(await outcome([`<think>x</think><answer>${golden}</answer>`])).toMatchObject({ reward: 1 });
    expect(await outcome(["<think>x</think><answer>qqq</answer>"])).toMatchObject({ reward: 0 });
    expect(await outcome([`<answer>${golden}</answer>`])).toMatchObject({ reward: 0.5 });
  });

  it("ends on the operator budget", async () => {
    const [task] = syntheticTasks({ count: 1, seed: 2 });
    if (!task) throw new Error("no task");
    const loop = Array(5).fill("<think>x</think><tool>Search: boss of kob</tool>");
    const { results } = await run({ operatorBudget: 3 }, (env) => drive(env, task, loop));
    expect(results.map((r) => r._tag)).toEqual(["Observation", "Observation", "Observation", "Done"]);
    expect(results.at(-1)).toMatchObject({ finishReason: "operator-budget", reward: -1.5 });
  });

  it("rejects tasks without a world and bad configs", async () => {
    const exit = await Effect.runPromiseExit(
      Effect.gen(function* () {
        const env = yield* Environment;
        return yield* env.reset({ id: "x", question: "q" });
      }).pipe(Effect.provide(SyntheticQAEnv.layer())),
    );
    expect(Exit.isFailure(exit) && JSON.stringify(exit.cause)).toContain("metadata.synthetic");
    for (const difficulty of [13, 0, [5, 3], [1, 2, 3]]) {
      const bad = await Effect.runPromiseExit(SyntheticQAEnv.resolveConfig({ difficulty }));
      expect(Exit.isFailure(bad) && JSON.stringify(bad.cause)).toContain("difficulty");
    }
    const badDistractors = await Effect.runPromiseExit(
      SyntheticQAEnv.resolveConfig({ distractors: [2, 99] }),
    );
    expect(Exit.isFailure(badDistractors) && JSON.stringify(badDistractors.cause)).toContain("distractors");
  });

  it("decodes its options with SyntheticQAOptions: an unknown key or a bad value names the option", async () => {
    const message = async (options: Record<string, unknown>) => {
      const exit = await Effect.runPromiseExit(SyntheticQAEnv.resolveConfig(options));
      return Exit.isFailure(exit) ? JSON.stringify(exit.cause) : "accepted";
    };
    // A typo used to be ignored (the run trained on difficulty 2); now it is refused by name.
    expect(await message({ dificulty: 3 })).toContain("dificulty");
    expect(await message({ difficulty: [5, 3] })).toContain("min ≤ max");
    expect(await message({ distractorOrder: "first" })).toContain("distractorOrder");
    expect(await message({ entities: 2.5 })).toContain("entities");
    expect(await message({ difficulty: [2, 4], distractors: 3, trainTasks: 10 })).toBe("accepted");
    expect(environmentPlugin.optionsSchema).toBe(SyntheticQAOptions);
  });

  it("random agent turns never break an episode", async () => {
    const [task] = syntheticTasks({ count: 1, seed: 4 });
    if (!task) throw new Error("no task");
    const turn = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc
        .tuple(fc.constantFrom("boss", "pal", "kin", "x", ""), fc.string({ maxLength: 4 }))
        .map(([r, n]) => `<think>t</think><tool>Search: ${r} of ${n}</tool>`),
      fc.constantFrom("<tool>Search</tool>", "<answer></answer>", "<tool>Nope: x</tool>", "</tool><tool>"),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(turn, { maxLength: 8 }), async (turns) => {
        const outcome = await run({ operatorBudget: 4 }, (env) =>
          Effect.gen(function* () {
            const { episode, results } = yield* drive(env, task, turns);
            const last = results.at(-1);
            return last?._tag === "Done" ? last : yield* episode.finish("max-turns");
          }),
        );
        expect([-1.5, -1, -0.5, 0, 0.5, 1]).toContain(outcome.reward);
      }),
      { numRuns: 150 },
    );
  });
});

describe("environmentPlugin", () => {
  it("makes seeded tasks per split and demonstrations", async () => {
    const train = await Effect.runPromise(
      environmentPlugin.tasks({ trainTasks: 10, difficulty: 3 }, "train", 1),
    );
    const again = await Effect.runPromise(
      environmentPlugin.tasks({ trainTasks: 10, difficulty: 3 }, "train", 1),
    );
    const evalTasks = await Effect.runPromise(environmentPlugin.tasks({ evalTasks: 4 }, "eval", 1));
    expect(train).toHaveLength(10);
    expect(again).toEqual(train);
    expect(evalTasks).toHaveLength(4);
    expect(train[0] && environmentPlugin.demonstrations?.(train[0], {})).toHaveLength(4);
    const bad = await Effect.runPromiseExit(environmentPlugin.tasks({ trainTasks: 0 }, "train", 1));
    expect(Exit.isFailure(bad)).toBe(true);
  });
});
