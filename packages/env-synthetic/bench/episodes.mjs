// Whole synthetic episodes: reset, one Search cycle per hop, answer, score (the demonstrations).
// Run after a build: `npx tsc -b && node bench/episodes.mjs` (imports the built package by name).
import { Environment } from "@workflow-r1/core";
import { SyntheticQAEnv, syntheticDemonstrations, syntheticTasks } from "@workflow-r1/env-synthetic";
import { Effect } from "effect";

const fmt = (n) => Math.round(n).toLocaleString("en-US");

for (const difficulty of [2, 4]) {
  const tasks = syntheticTasks({ count: 2000, seed: 1, difficulty });
  const t0 = performance.now();
  const rewards = await Effect.runPromise(
    Effect.gen(function* () {
      const env = yield* Environment;
      return yield* Effect.forEach(tasks, (task) =>
        Effect.gen(function* () {
          const episode = yield* env.reset(task);
          let last;
          for (const turn of syntheticDemonstrations(task)) last = yield* episode.step(turn);
          return last.reward;
        }),
      );
    }).pipe(Effect.provide(SyntheticQAEnv.layer({ difficulty }))),
  );
  const s = (performance.now() - t0) / 1000;
  const mean = rewards.reduce((a, b) => a + b, 0) / rewards.length;
  console.log(
    `SyntheticQAEnv difficulty ${difficulty}: ${fmt(tasks.length / s)} episodes/s (${difficulty + 1} turns each, demonstration mean reward ${mean})`,
  );
}
