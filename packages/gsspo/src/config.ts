/**
 * The algorithm's config: one Schema, embedded as is by the trainer (`algorithm:` in a workflow-r1
 * config). It names the variant and overrides its loss settings, and holds what the update does
 * around the loss: advantages, group filtering, truncated importance sampling and the plan of
 * epochs × mini-batches. Every field but `name` is optional; {@link resolveAlgorithmConfig} fills
 * the rest from the variant and {@link algorithmDefaults}.
 */
import { Schema } from "effect";
import { groupAdvantages } from "./advantages.js";
import { AdvantageInputError, AlgorithmConfigError, PolicyLossInputError } from "./errors.js";
import { resolvePolicyLoss } from "./registry.js";
import type { ResolvedPolicyLoss } from "./types.js";

const Positive = Schema.Number.check(Schema.isGreaterThan(0));
const NonNegative = Schema.Number.check(Schema.isGreaterThanOrEqualTo(0));
const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1));

export const AlgorithmConfig = Schema.Struct({
  /** The variant: `grpo`, `gspo`, `gsspo` or a registered name. */
  name: Schema.String,
  /** Overrides the variant's units (and drops its custom segmentation). */
  units: Schema.optional(Schema.Literals(["token", "sequence", "subsequence"])),
  clipLow: Schema.optional(Positive),
  clipHigh: Schema.optional(Positive),
  /** A number > 1 turns the dual clip on, `null` turns it off. */
  dualClip: Schema.optional(Schema.NullOr(Schema.Number.check(Schema.isGreaterThan(1)))),
  aggregation: Schema.optional(Schema.Literals(["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"])),
  /** β of the KL-to-reference term; > 0 needs the reference policy's log-probabilities. */
  klCoef: Schema.optional(NonNegative),
  klEstimator: Schema.optional(Schema.Literals(["k1", "k2", "k3"])),
  /** Group advantages divided by the group's std (GRPO) or not (Dr. GRPO). Default true. */
  normalizeByStd: Schema.optional(Schema.Boolean),
  /** Added to the group std. Default 1e-6. */
  eps: Schema.optional(NonNegative),
  /** Truncated importance sampling between sampler and learner: per-token weight min(π_learner/π_sampler, C). Null (default) = off. */
  tisCap: Schema.optional(Schema.NullOr(Positive)),
  /** Leave out groups whose rewards are all equal (no signal; a group of one stays). Default true. */
  dropUniformGroups: Schema.optional(Schema.Boolean),
  /** Passes over the batch per update. Default 1. */
  ppoEpochs: Schema.optional(PositiveInt),
  /** Optimizer steps per epoch, each on a disjoint share of the shuffled batch. Default 1. */
  miniBatches: Schema.optional(PositiveInt),
});
export type AlgorithmConfig = typeof AlgorithmConfig.Type;

/** What an unset field of {@link AlgorithmConfig} means (loss settings come from the variant). */
export const algorithmDefaults = {
  normalizeByStd: true,
  eps: 1e-6,
  tisCap: null,
  dropUniformGroups: true,
  ppoEpochs: 1,
  miniBatches: 1,
} as const;

/** A config with every field settled: the loss settings of the variant and the update's options. */
export interface ResolvedAlgorithm {
  readonly loss: ResolvedPolicyLoss;
  readonly normalizeByStd: boolean;
  readonly eps: number;
  readonly tisCap: number | null;
  readonly dropUniformGroups: boolean;
  readonly ppoEpochs: number;
  readonly miniBatches: number;
}

const decode = Schema.decodeUnknownSync(AlgorithmConfig, { onExcessProperty: "error", errors: "all" });

/** The first `at ["a"]["b"]` of a Schema message, as `a.b`. */
const firstPath = (message: string) => {
  const match = /at (\[[^\n]*\])/.exec(message);
  if (!match) return "config";
  return [...match[1]!.matchAll(/\["?([^"\]]*)"?\]/g)].map((m) => m[1]).join(".");
};

/**
 * Validate a config (any value: it is decoded with the Schema, excess fields refused) and resolve
 * it against its variant. Throws {@link AlgorithmConfigError} naming the first offending field:
 * a Schema violation, an unknown variant, a setting the variant's validation refuses.
 */
export const resolveAlgorithmConfig = (config: unknown): ResolvedAlgorithm => {
  let decoded: AlgorithmConfig;
  try {
    decoded = decode(config);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new AlgorithmConfigError({
      field: firstPath(message),
      message: `invalid algorithm config: ${message}`,
    });
  }
  try {
    const loss = resolvePolicyLoss({
      variant: decoded.name,
      units: decoded.units,
      clipLow: decoded.clipLow,
      clipHigh: decoded.clipHigh,
      dualClip: decoded.dualClip,
      aggregation: decoded.aggregation,
      klCoef: decoded.klCoef,
      klEstimator: decoded.klEstimator,
    });
    const resolved: ResolvedAlgorithm = {
      loss,
      normalizeByStd: decoded.normalizeByStd ?? algorithmDefaults.normalizeByStd,
      eps: decoded.eps ?? algorithmDefaults.eps,
      tisCap: decoded.tisCap ?? algorithmDefaults.tisCap,
      dropUniformGroups: decoded.dropUniformGroups ?? algorithmDefaults.dropUniformGroups,
      ppoEpochs: decoded.ppoEpochs ?? algorithmDefaults.ppoEpochs,
      miniBatches: decoded.miniBatches ?? algorithmDefaults.miniBatches,
    };
    groupAdvantages([], [], resolved); // refuses a bad eps now rather than at the first update
    return resolved;
  } catch (error) {
    if (error instanceof PolicyLossInputError || error instanceof AdvantageInputError)
      throw new AlgorithmConfigError({
        field: error.field === "variant" ? "name" : error.field,
        message: error.message,
      });
    throw error;
  }
};
