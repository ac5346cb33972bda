// Episodes per second through the public plugin (built dist): tasks, reset, the ideal turns, Done.
// The environment must never be the bottleneck of a rollout (the policy samples ~10² tokens/s here).
import { Environment } from "@workflow-r1/core";
import { environmentPlugin } from "@workflow-r1/env-arith";
import { Effect } from "effect";

const run = (steps, count) =>
  Effect.runPromise(
    Effect.gen(function* () {
      const options = { steps, trainSize: count };
      const t0 = performance.now();
      const tasks = yield* environmentPlugin.tasks(options, "train", 1);
      const t1 = performance.now();
      const environment = yield* Environment;
      let reward = 0;
      for (const task of tasks) {
        const episode = yield* environment.reset(task);
        let last;
        for (const turn of environmentPlugin.demonstrations(task, options)) last = yield* episode.step(turn);
        reward += last.reward;
      }
      const t2 = performance.now();
      return {
        steps,
        tasks: tasks.length,
        taskMs: t1 - t0,
        episodesPerS: tasks.length / ((t2 - t1) / 1000),
        reward,
      };
    }).pipe(Effect.provide(environmentPlugin.layer({ steps, trainSize: count }))),
  );

for (const steps of [2, 4, 6]) {
  const r = await run(steps, steps === 2 ? 3_000 : 20_000);
  console.log(
    `steps=${r.steps}: ${r.tasks} tasks in ${r.taskMs.toFixed(0)} ms; ` +
      `${Math.round(r.episodesPerS).toLocaleString("en-US")} episodes/s (${steps + 1} turns each); mean reward ${(r.reward / r.tasks).toFixed(3)}`,
  );
}
