/**
 * @workflow-r1/gsspo — GRPO, GSPO and GSsPO: from a rollout's trajectory groups to the learner's
 * per-token coefficients and the update's metrics. Group filtering, group advantages, the update
 * plan, truncated importance sampling, and the clipped policy loss over token, sequence or
 * sub-sequence units (`Trajectory.segments`) with KL to a reference — or a variant's own units and
 * surrogate.
 */
export { type GroupAdvantageOptions, groupAdvantages } from "./advantages.js";
export { Algorithm, type AlgorithmShape, makeAlgorithm, type UpdateSession } from "./algorithm.js";
export {
  AlgorithmConfig,
  algorithmDefaults,
  type ResolvedAlgorithm,
  resolveAlgorithmConfig,
} from "./config.js";
export {
  AdvantageInputError,
  AlgorithmConfigError,
  type AlgorithmInputError,
  PolicyLossInputError,
} from "./errors.js";
export { k3Clamp, klDerivative, klEstimate } from "./kl.js";
export { logRatioCap, policyLoss, policyLossResolved } from "./loss.js";
export {
  basePolicyLossSettings,
  defaultVariant,
  policyLossVariants,
  registerPolicyLoss,
  resolvePolicyLoss,
  unregisterPolicyLoss,
  validateSettings,
  variantDefaults,
} from "./registry.js";
export { clippedSurrogate } from "./surrogate.js";
export type {
  Aggregation,
  KlEstimator,
  PolicyLossConfig,
  PolicyLossDefinition,
  PolicyLossMetrics,
  PolicyLossResult,
  PolicyLossSettings,
  PolicyLossTrajectory,
  ResolvedPolicyLoss,
  Surrogate,
  SurrogateUnit,
  SurrogateValue,
  UnitKind,
  UnitSegmenter,
} from "./types.js";
export { segmentsOf, type UnitSource, unitCount, unitsFromMask, unitsOf } from "./units.js";
export {
  dropUniformGroups,
  type MiniBatchUpdate,
  mismatchMetrics,
  type PlanRandom,
  prepareUpdate,
  samplerEntropy,
  tisWeights,
  type UpdateBatch,
  UpdateState,
  updatePlan,
  usableTrajectories,
} from "./update.js";
export { grpo as grpoDefinition } from "./variants/grpo.js";
export { gspo as gspoDefinition } from "./variants/gspo.js";
export { gsspo as gsspoDefinition } from "./variants/gsspo.js";
