/**
 * @workflow-r1/env-arith — multi-step arithmetic with a calculator tool: a small multi-turn task a
 * tiny byte-level model can learn. `workflow-r1 train --env arith` uses its `environmentPlugin`.
 */
export {
  type Action,
  arithEnvironmentLayer,
  type Calculation,
  computesStep,
  makeArithEnvironment,
  parseAction,
  score,
  stopSequences,
} from "./environment.js";
export {
  type ArithOptions,
  ArithOptionsSchema,
  type Operator,
  operators,
  type ResolvedArithOptions,
  resolveOptions,
  resolveOptionsSync,
} from "./options.js";
export { environmentPlugin } from "./plugin.js";
export {
  type ArithChain,
  type ArithStep,
  apply,
  chainOf,
  demonstrations,
  expression,
  makeTasks,
  question,
  splitOf,
} from "./tasks.js";
