/**
 * @workflow-r1/env-arith — Multi-step arithmetic with a calculator tool: a small multi-turn task a tiny byte-level model can learn.
 */
export {
  type Action,
  arithEnvironmentLayer,
  makeArithEnvironment,
  parseAction,
  score,
  stopSequences,
} from "./environment.js";
export {
  type ArithOptions,
  type ResolvedArithOptions,
  resolveOptions,
  resolveOptionsSync,
} from "./options.js";
export { environmentPlugin } from "./plugin.js";
export { demonstrations, type LookupTable, lookupOf, makeTasks, question, rng } from "./tasks.js";
