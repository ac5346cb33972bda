/**
 * Variants by name. The three built-ins are seeded here (no import side effects); a new variant is
 * one `registerPolicyLoss(name, definition)` call that never touches the loss itself — its own units
 * (`segment`) and its own per-unit objective (`surrogate`) included.
 */
import { PolicyLossInputError } from "./errors.js";
import type {
  Aggregation,
  KlEstimator,
  PolicyLossConfig,
  PolicyLossDefinition,
  PolicyLossSettings,
  ResolvedPolicyLoss,
  Surrogate,
  UnitKind,
  UnitSegmenter,
} from "./types.js";
import { grpo } from "./variants/grpo.js";
import { gspo } from "./variants/gspo.js";
import { gsspo } from "./variants/gsspo.js";

/** The variant used when a config names none. */
export const defaultVariant = "gsspo";

/** What a definition without `extends` starts from: plain PPO over tokens, no dual clip, no KL. */
export const basePolicyLossSettings: PolicyLossSettings = {
  units: "token",
  clipLow: 0.2,
  clipHigh: 0.2,
  dualClip: null,
  aggregation: "token-mean",
  klCoef: 0,
  klEstimator: "k3",
};

const builtins: ReadonlyMap<string, PolicyLossDefinition> = new Map([
  ["grpo", grpo],
  ["gspo", gspo],
  ["gsspo", gsspo],
]);

const registry = new Map<string, PolicyLossDefinition>(builtins);

const unitKinds: ReadonlyArray<UnitKind> = ["token", "sequence", "subsequence"];
const aggregations: ReadonlyArray<Aggregation> = ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"];
const klEstimators: ReadonlyArray<KlEstimator> = ["k1", "k2", "k3"];

const fail = (field: string, message: string): never => {
  throw new PolicyLossInputError({ field, message });
};

const oneOf = <A extends string>(
  field: string,
  value: unknown,
  allowed: ReadonlyArray<A>,
  where: string,
): A =>
  allowed.includes(value as A)
    ? (value as A)
    : fail(field, `${where}${field} is ${JSON.stringify(value)}; expected one of ${allowed.join(", ")}`);

/** Throws a {@link PolicyLossInputError} naming the first invalid setting. */
export const validateSettings = (settings: PolicyLossSettings, where = ""): PolicyLossSettings => {
  oneOf("units", settings.units, unitKinds, where);
  oneOf("aggregation", settings.aggregation, aggregations, where);
  oneOf("klEstimator", settings.klEstimator, klEstimators, where);
  // `!(x > 0)` also rejects NaN and non-numbers; +Infinity is allowed and means "no clip on that side".
  if (typeof settings.clipLow !== "number" || !(settings.clipLow > 0))
    fail("clipLow", `${where}clipLow is ${settings.clipLow}; expected a number > 0`);
  if (typeof settings.clipHigh !== "number" || !(settings.clipHigh > 0))
    fail("clipHigh", `${where}clipHigh is ${settings.clipHigh}; expected a number > 0`);
  const dual = settings.dualClip;
  if (dual !== null && (typeof dual !== "number" || !(dual > 1) || dual === Number.POSITIVE_INFINITY))
    fail("dualClip", `${where}dualClip is ${dual}; expected a finite number > 1 or null`);
  const beta = settings.klCoef;
  if (typeof beta !== "number" || !(beta >= 0) || beta === Number.POSITIVE_INFINITY)
    fail("klCoef", `${where}klCoef is ${beta}; expected a finite number ≥ 0`);
  return settings;
};

const definedFields = (partial: Partial<PolicyLossSettings> | PolicyLossConfig | undefined) => {
  const out: Record<string, unknown> = {};
  if (partial)
    for (const key of Object.keys(basePolicyLossSettings)) {
      const value = (partial as Record<string, unknown>)[key];
      if (value !== undefined) out[key] = value;
    }
  return out as Partial<PolicyLossSettings>;
};

interface ResolvedDefinition {
  readonly settings: PolicyLossSettings;
  readonly segment: UnitSegmenter | undefined;
  readonly surrogate: Surrogate | undefined;
}

const resolveDefinition = (name: string, seen: ReadonlyArray<string>): ResolvedDefinition => {
  const definition = registry.get(name);
  if (definition === undefined)
    return fail(
      seen.length === 0 ? "variant" : "extends",
      `unknown policy-loss variant ${JSON.stringify(name)}; registered: ${[...registry.keys()].join(", ")}`,
    );
  if (seen.includes(name))
    return fail("extends", `variant ${JSON.stringify(name)} extends itself (${[...seen, name].join(" → ")})`);
  const parent: ResolvedDefinition =
    definition.extends === undefined
      ? { settings: basePolicyLossSettings, segment: undefined, surrogate: undefined }
      : resolveDefinition(definition.extends, [...seen, name]);
  const own = definedFields(definition.defaults);
  return {
    settings: { ...parent.settings, ...own },
    // Choosing built-in units explicitly drops a segmentation inherited from the parent.
    segment: definition.segment ?? (own.units !== undefined ? undefined : parent.segment),
    surrogate: definition.surrogate ?? parent.surrogate,
  };
};

/**
 * Resolve a call config against its variant: variant defaults first, explicit config fields over
 * them. An explicit `units` replaces the variant's custom segmentation. Throws
 * {@link PolicyLossInputError} for an unknown variant or an invalid setting.
 */
export const resolvePolicyLoss = (config: PolicyLossConfig = {}): ResolvedPolicyLoss => {
  const variant = config.variant ?? defaultVariant;
  if (typeof variant !== "string")
    return fail("variant", `variant is ${JSON.stringify(variant)}; expected a string`);
  const { settings, segment, surrogate } = resolveDefinition(variant, []);
  const own = definedFields(config);
  const resolved = validateSettings({ ...settings, ...own }, `variant ${variant}: `);
  return { ...resolved, variant, segment: own.units !== undefined ? undefined : segment, surrogate };
};

/**
 * Register a loss variant by name, so `policyLoss(batch, { variant: name })` uses it. Replaces a
 * variant registered earlier under the same name; the built-ins (grpo, gspo, gsspo) cannot be
 * replaced. Throws {@link PolicyLossInputError} when the definition's settings are invalid.
 */
export const registerPolicyLoss = (name: string, definition: PolicyLossDefinition): void => {
  if (typeof name !== "string" || name.length === 0)
    fail("name", "a policy-loss variant needs a non-empty name");
  if (builtins.has(name))
    fail("name", `${JSON.stringify(name)} is a built-in variant and cannot be replaced`);
  if (definition.segment !== undefined && typeof definition.segment !== "function")
    fail("segment", `variant ${name}: segment must be a function ((mask, segments) → unit id per token)`);
  if (definition.surrogate !== undefined && typeof definition.surrogate !== "function")
    fail("surrogate", `variant ${name}: surrogate must be a function (unit, settings) → { value, slope }`);
  const previous = registry.get(name);
  registry.set(name, definition);
  try {
    resolvePolicyLoss({ variant: name });
  } catch (error) {
    if (previous === undefined) registry.delete(name);
    else registry.set(name, previous);
    throw error;
  }
};

/** Remove a variant added with {@link registerPolicyLoss}; returns whether it was registered. */
export const unregisterPolicyLoss = (name: string): boolean => !builtins.has(name) && registry.delete(name);

/** Names of every registered variant, built-ins first. */
export const policyLossVariants = (): string[] => [...registry.keys()];

/** The settings a variant uses when the config sets nothing else. */
export const variantDefaults = (name: string): PolicyLossSettings => {
  const {
    variant: _variant,
    segment: _segment,
    surrogate: _surrogate,
    ...settings
  } = resolvePolicyLoss({ variant: name });
  return settings;
};
