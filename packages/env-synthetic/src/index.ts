/**
 * @workflow-r1/env-synthetic — synthetic multi-hop QA with the Workflow-R1 protocol and reward and
 * no LLM: the embedded default environment of `workflow-r1 train`.
 */
export {
  type CountOrRange,
  environmentPlugin,
  generateWorld,
  makeSyntheticQAEnv,
  type ResolvedSyntheticQAConfig,
  resolveSyntheticQAConfig,
  SYNTHETIC_RELATIONS,
  type SyntheticQAConfig,
  SyntheticQAEnv,
  SyntheticQAOptions,
  type SyntheticRelation,
  type SyntheticWorld,
  syntheticChain,
  syntheticDemonstrations,
  syntheticQuestion,
  syntheticSearch,
  syntheticTasks,
  withDistractors,
} from "./synthetic.js";
