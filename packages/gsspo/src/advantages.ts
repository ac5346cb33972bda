import { AdvantageInputError } from "./errors.js";

export interface GroupAdvantageOptions {
  /** Divide by the group's standard deviation (GRPO, default) or not (Dr. GRPO). */
  readonly normalizeByStd?: boolean | undefined;
  /** Added to the standard deviation; default 1e-6. */
  readonly eps?: number | undefined;
}

/**
 * GRPO's group-relative advantage per trajectory. Trajectories with the same group id are the G
 * samples of one task:
 * - group size ≥ 2: `(r − mean) / (std + eps)`, std unbiased (n − 1);
 * - group size 1: `r / (1 + eps)` (mean 0, std 1, as verl does);
 * - `normalizeByStd: false`: `r − mean` (size 1: `r`).
 * Throws {@link AdvantageInputError} on a length mismatch, a non-finite reward or a bad option.
 */
export const groupAdvantages = (
  rewards: ArrayLike<number>,
  groupIds: ArrayLike<number | string>,
  options: GroupAdvantageOptions = {},
): Float64Array => {
  const n = rewards.length;
  if (groupIds.length !== n)
    throw new AdvantageInputError({
      field: "groupIds",
      message: `groupIds has length ${groupIds.length}, rewards has length ${n}; expected one group id per reward`,
    });
  const eps = options.eps ?? 1e-6;
  if (typeof eps !== "number" || !(eps >= 0) || eps === Number.POSITIVE_INFINITY)
    throw new AdvantageInputError({ field: "eps", message: `eps is ${eps}; expected a finite number ≥ 0` });
  const normalize = options.normalizeByStd ?? true;

  // Dense group index per trajectory, then two passes per group (mean, then squared deviations)
  // for a numerically stable standard deviation.
  const groupOf = new Int32Array(n);
  const index = new Map<number | string, number>();
  for (let i = 0; i < n; i++) {
    const r = rewards[i]!;
    if (typeof r !== "number" || !Number.isFinite(r))
      throw new AdvantageInputError({
        field: "rewards",
        trajectory: i,
        message: `trajectory ${i}: reward is ${r}; expected a finite number`,
      });
    const id = groupIds[i]!;
    if (typeof id !== "string" && typeof id !== "number")
      throw new AdvantageInputError({
        field: "groupIds",
        trajectory: i,
        message: `trajectory ${i}: group id is ${JSON.stringify(id)}; expected a string or a number`,
      });
    let g = index.get(id);
    if (g === undefined) {
      g = index.size;
      index.set(id, g);
    }
    groupOf[i] = g;
  }
  const groups = index.size;
  const count = new Float64Array(groups);
  const mean = new Float64Array(groups);
  // Per-group divisor: std + eps (1 + eps for a group of one), or 1 without normalisation.
  const divisor = new Float64Array(groups);
  for (let i = 0; i < n; i++) {
    count[groupOf[i]!]! += 1;
    mean[groupOf[i]!]! += rewards[i]!;
  }
  for (let g = 0; g < groups; g++) mean[g] = count[g]! > 1 ? mean[g]! / count[g]! : 0;
  if (normalize) {
    for (let i = 0; i < n; i++) {
      const delta = rewards[i]! - mean[groupOf[i]!]!;
      divisor[groupOf[i]!]! += delta * delta;
    }
    for (let g = 0; g < groups; g++) {
      const std = count[g]! > 1 ? Math.sqrt(divisor[g]! / (count[g]! - 1)) : 1;
      divisor[g] = std + eps;
    }
  } else divisor.fill(1);

  const advantages = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const g = groupOf[i]!;
    advantages[i] = (rewards[i]! - mean[g]!) / divisor[g]!;
  }
  return advantages;
};
