/**
 * @workflow-r1/gsspo — GRPO, GSPO and GSsPO: group advantages, the clipped policy loss over token,
 * sequence or sub-sequence units, KL to a reference, and the per-token coefficients dLoss/dlogpNew.
 */
export { type GroupAdvantageOptions, groupAdvantages } from "./advantages.js";
export { Algorithm, type AlgorithmConfig, type AlgorithmShape, makeAlgorithm } from "./algorithm.js";
export { AdvantageInputError, PolicyLossInputError } from "./errors.js";
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
  UnitKind,
  UnitSegmenter,
} from "./types.js";
export { unitCount, unitsFromMask } from "./units.js";
export { grpo as grpoDefinition } from "./variants/grpo.js";
export { gspo as gspoDefinition } from "./variants/gspo.js";
export { gsspo as gsspoDefinition } from "./variants/gsspo.js";
