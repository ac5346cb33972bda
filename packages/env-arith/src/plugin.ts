import type { EnvironmentPlugin } from "@workflow-r1/core";
import { Effect } from "effect";
import { arithEnvironmentLayer } from "./environment.js";
import { resolveOptions, resolveOptionsSync } from "./options.js";
import { demonstrations, makeTasks } from "./tasks.js";

/** What `workflow-r1 train --env arith` imports from `@workflow-r1/env-arith`. */
export const environmentPlugin: EnvironmentPlugin = {
  name: "arith",
  description:
    "Multi-step arithmetic with a calculator tool: a small multi-turn task a tiny byte-level model can learn.",
  layer: (options) => arithEnvironmentLayer(options),
  tasks: (options, split, seed) =>
    Effect.map(resolveOptions(options), (resolved) => makeTasks(resolved, split, seed)),
  demonstrations: (task, options) => {
    resolveOptionsSync(options);
    return demonstrations(task);
  },
};
