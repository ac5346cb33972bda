/**
 * Per-token estimators of KL(π_new ‖ π_ref) and their derivatives with respect to logpNew, with
 * d = logpRef − logpNew. The loss inlines the same formulas in its hot loop; these scalar forms are
 * the reference for tests and for variants built on top of this package.
 */
import type { KlEstimator } from "./types.js";

/** k3 is clamped to [−10, 10]: one far-off token must not dominate the batch. */
export const k3Clamp = 10;

/** kl_t: k1 = −d, k2 = ½d², k3 = clamp(eᵈ − d − 1, −10, 10). */
export const klEstimate = (estimator: KlEstimator, logpNew: number, logpRef: number): number => {
  const d = logpRef - logpNew;
  if (estimator === "k1") return -d;
  if (estimator === "k2") return 0.5 * d * d;
  const raw = Math.exp(d) - d - 1;
  return Math.min(Math.max(raw, -k3Clamp), k3Clamp);
};

/** ∂kl_t/∂logpNew: k1 → 1, k2 → −d, k3 → 1 − eᵈ (0 where the clamp binds). */
export const klDerivative = (estimator: KlEstimator, logpNew: number, logpRef: number): number => {
  const d = logpRef - logpNew;
  if (estimator === "k1") return 1;
  if (estimator === "k2") return -d;
  const raw = Math.exp(d) - d - 1;
  return raw > k3Clamp || raw < -k3Clamp ? 0 : 1 - Math.exp(d);
};
