/**
 * Settings and shapes shared by the loss, the variant registry and the Effect wrapper.
 */

/** How masked tokens are grouped into importance-ratio units (the only difference between the variants). */
export type UnitKind = "token" | "sequence" | "subsequence";

/** How per-token values are averaged into the loss; fixes the weight w_t of every masked token. */
export type Aggregation = "token-mean" | "seq-mean-token-mean" | "seq-mean-token-sum";

/** KL(π_new ‖ π_ref) estimator applied per token, with d_t = logpRef[t] − logpNew[t]. */
export type KlEstimator = "k1" | "k2" | "k3";

/**
 * Custom unit segmentation: given one trajectory's mask and its segments (the Think-Action cycle of
 * every token, `Trajectory.segments`: 0, 1, … per maximal run of mask 1, −1 where mask is 0), the
 * unit id of every token — an integer `0 ≤ id < mask.length` where mask is 1, exactly −1 where mask
 * is 0. Tokens sharing an id share one importance ratio; ids need not be contiguous in position nor
 * dense.
 */
export type UnitSegmenter = (mask: ArrayLike<number>, segments: ArrayLike<number>) => ArrayLike<number>;

/** What a {@link Surrogate} sees of one unit u. */
export interface SurrogateUnit {
  /** logS_u: the mean over the unit's tokens of logpNew − logpOld, capped at `logRatioCap` (10). */
  readonly logRatio: number;
  /** s_u = exp(logS_u). */
  readonly ratio: number;
  /** The trajectory's advantage A. */
  readonly advantage: number;
  /** Masked tokens in the unit (n_u ≥ 1). */
  readonly tokens: number;
}

/** A surrogate's answer for one unit. */
export interface SurrogateValue {
  /** ℓ_u: the loss of each token of the unit (the loss adds w_t · ℓ_u per token). */
  readonly value: number;
  /**
   * dℓ_u/dlogS_u. Every token of the unit gets c_t = w_t · slope (plus the KL term): logS_u is the
   * mean of the unit's log-ratios, so ∂(n_u · ℓ_u)/∂logpNew[t] = ℓ_u'. Ignored (0) for a capped unit.
   */
  readonly slope: number;
  /** Counted in clipFraction / unitClipFraction (default false). */
  readonly clipped?: boolean;
}

/**
 * A per-unit objective in place of the built-in clipped surrogate
 * (`ℓ = max(−A·s, −A·clip(s, 1−εlow, 1+εhigh))`, dual clip for A < 0; see `clippedSurrogate`).
 * Called once per unit with the resolved settings (clip range, dual clip… for the surrogate to use
 * or ignore). Returning a non-finite value or slope is a {@link PolicyLossInputError}.
 */
export type Surrogate = (unit: SurrogateUnit, settings: PolicyLossSettings) => SurrogateValue;

/** Every setting of the loss family, fully resolved. */
export interface PolicyLossSettings {
  readonly units: UnitKind;
  /** εlow: the ratio is clipped below at 1 − εlow. */
  readonly clipLow: number;
  /** εhigh: the ratio is clipped above at 1 + εhigh. */
  readonly clipHigh: number;
  /** Dual clip constant c > 1 applied where the advantage is negative, or null for none. */
  readonly dualClip: number | null;
  readonly aggregation: Aggregation;
  /** β ≥ 0, the weight of the KL-to-reference term; 0 turns it off. */
  readonly klCoef: number;
  readonly klEstimator: KlEstimator;
}

/** One trajectory of a policy-loss batch: per-token arrays of equal length and a scalar advantage. */
export interface PolicyLossTrajectory {
  readonly logpNew: ArrayLike<number>;
  readonly logpOld: ArrayLike<number>;
  /** Reference-policy log-probabilities; required when klCoef > 0. */
  readonly logpRef?: ArrayLike<number> | undefined;
  /** 1 where the policy produced the token, 0 elsewhere (prompt, observations, padding). */
  readonly mask: ArrayLike<number>;
  /**
   * The Think-Action cycle of every token (`Trajectory.segments`: 0, 1, … per maximal run of mask 1,
   * −1 where mask is 0): the units of `subsequence` and what a custom segmentation starts from.
   * Absent: core's `segmentsFromMask(mask)`.
   */
  readonly segments?: ArrayLike<number> | undefined;
  readonly advantage: number;
}

/** What the caller may set; every field falls back to the variant's default. */
export interface PolicyLossConfig {
  /** `grpo`, `gspo`, `gsspo` (the default) or a name given to {@link registerPolicyLoss}. */
  readonly variant?: string | undefined;
  /** Overrides the variant's units, including a custom segmentation the variant may define. */
  readonly units?: UnitKind | undefined;
  readonly clipLow?: number | undefined;
  readonly clipHigh?: number | undefined;
  /** A number > 1 turns the dual clip on, `null` turns it off. */
  readonly dualClip?: number | null | undefined;
  readonly aggregation?: Aggregation | undefined;
  readonly klCoef?: number | undefined;
  readonly klEstimator?: KlEstimator | undefined;
}

export interface PolicyLossMetrics {
  /** Clipped masked tokens / masked tokens (PPO clip or dual clip). */
  readonly clipFraction: number;
  /** Clipped units / units. */
  readonly unitClipFraction: number;
  /** Mean over masked tokens of logpOld − logpNew. */
  readonly approxKl: number;
  /** Mean, min and max of the unit ratios s_u (after the logS ≤ 10 cap); NaN when there are no units. */
  readonly ratioMean: number;
  readonly ratioMin: number;
  readonly ratioMax: number;
  /** Number of units with at least one masked token. */
  readonly units: number;
  /** Number of masked tokens. */
  readonly tokens: number;
  /** Mean over masked tokens of the KL estimate kl_t; present when klCoef > 0. */
  readonly klMean?: number;
}

export interface PolicyLossResult {
  readonly loss: number;
  /** dLoss/dlogpNew per trajectory, one array per trajectory of its length, 0 where mask is 0. */
  readonly coefficients: Float64Array[];
  readonly metrics: PolicyLossMetrics;
}

/**
 * A named loss variant. `defaults` override the settings of the variant named by `extends`
 * (or, without `extends`, {@link basePolicyLossSettings}); `segment` replaces the built-in
 * segmentation of `units` (an explicit `units` in the call config still wins); `surrogate` replaces
 * the clipped per-unit objective. Both are inherited through `extends`.
 */
export interface PolicyLossDefinition {
  readonly description?: string;
  readonly extends?: string;
  readonly defaults?: Partial<PolicyLossSettings>;
  readonly segment?: UnitSegmenter;
  readonly surrogate?: Surrogate;
}

/** A config resolved against its variant: settings plus the variant's own code, if any. */
export interface ResolvedPolicyLoss extends PolicyLossSettings {
  readonly variant: string;
  readonly segment: UnitSegmenter | undefined;
  readonly surrogate: Surrogate | undefined;
}
