import { EnvironmentError, type EnvironmentPlugin } from "@workflow-r1/core";
import { Effect } from "effect";
import { arithEnvironmentLayer } from "./environment.js";
import { ArithOptionsSchema, resolveOptions, resolveOptionsSync } from "./options.js";
import { demonstrations, makeTasks } from "./tasks.js";

/** What `workflow-r1 train --env arith` imports from `@workflow-r1/env-arith`. */
export const environmentPlugin: EnvironmentPlugin = {
  name: "arith",
  description:
    "Multi-step arithmetic with a calculator tool: a small multi-turn task a tiny byte-level model can learn.",
  layer: (options) => arithEnvironmentLayer(options),
  tasks: (options, split, seed) =>
    Effect.flatMap(resolveOptions(options), (resolved) => {
      const tasks = makeTasks(resolved, split, seed);
      return tasks.length > 0
        ? Effect.succeed(tasks)
        : Effect.fail(
            new EnvironmentError({
              message: `arith: no ${split} task fits environment.options ${JSON.stringify(options)}`,
            }),
          );
    }),
  demonstrations: (task, options) => {
    resolveOptionsSync(options);
    return demonstrations(task);
  },
  optionsSchema: ArithOptionsSchema,
};
