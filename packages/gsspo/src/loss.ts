/**
 * The policy loss of the GRPO / GSPO / GSsPO family and its per-token gradient coefficients
 * c_t = dLoss/dlogpNew[t], exactly as the package's SPEC.md (../SPEC.md) defines them. Plain
 * typed-array loops: the arrays of one call are allocated up front (unit sums, per-trajectory
 * weights, the returned coefficients) and the hot loops create no objects and call no closures
 * (a variant's own segmentation or surrogate aside).
 *
 * Units: `token` and `sequence` follow from the mask; `subsequence` units are the trajectory's
 * segments (`Trajectory.segments`, core's one definition of a Think-Action cycle), and a variant's
 * segmentation maps mask and segments to unit ids. The loss never detects cycles itself.
 */
import { segmentsFromMask } from "@workflow-r1/core";
import { PolicyLossInputError } from "./errors.js";
import { k3Clamp } from "./kl.js";
import { resolvePolicyLoss } from "./registry.js";
import type {
  PolicyLossConfig,
  PolicyLossMetrics,
  PolicyLossResult,
  PolicyLossTrajectory,
  ResolvedPolicyLoss,
} from "./types.js";

/** logS_u is capped here; beyond it s_u is treated as a constant (no gradient). */
export const logRatioCap = 10;

// Small integer codes keep the hot loops free of string comparisons. IDS: unit ids per token from
// the trajectory's segments (subsequence) or from the variant's segmentation.
const TOKEN = 0;
const SEQUENCE = 1;
const IDS = 2;
const K1 = 1;
const K2 = 2;

const inputError = (field: string, message: string, trajectory?: number, position?: number) =>
  new PolicyLossInputError({
    field,
    message: trajectory === undefined ? message : `trajectory ${trajectory}: ${message}`,
    ...(trajectory !== undefined && { trajectory }),
    ...(position !== undefined && { position }),
  });

const describe = (value: unknown) => (typeof value === "number" ? String(value) : JSON.stringify(value));

// Cold path: find which array holds the non-finite value that made d = logpNew − logpOld non-finite.
const nonFiniteError = (trajectory: PolicyLossTrajectory, i: number, t: number, ref: boolean) => {
  const fields = ref ? (["logpRef", "logpNew"] as const) : (["logpNew", "logpOld"] as const);
  for (const field of fields) {
    const value = trajectory[field]![t];
    if (typeof value !== "number" || !Number.isFinite(value))
      return inputError(
        field,
        `${field}[${t}] is ${describe(value)} at a masked position (mask 1); expected a finite log-probability`,
        i,
        t,
      );
  }
  return inputError(
    fields[0],
    `${fields[0]}[${t}] − ${fields[1]}[${t}] overflows at a masked position; expected finite log-probabilities`,
    i,
    t,
  );
};

const isArrayLike = (value: unknown): value is ArrayLike<number> =>
  value != null && typeof value === "object" && typeof (value as ArrayLike<number>).length === "number";

/**
 * Loss, metrics and coefficients for a batch, with the variant's defaults and explicit config
 * fields over them. Throws {@link PolicyLossInputError} naming the trajectory and field of the first
 * invalid input (length mismatch, non-finite value at a masked position, mask not 0/1, a segment
 * id that is not an integer in [0, n) where the mask is 1 or −1 where it is 0, non-finite advantage,
 * missing logpRef with klCoef > 0, empty batch, a variant's segmentation or surrogate answering
 * outside its contract) or the invalid setting. Exceptions thrown by a variant's own code propagate.
 */
export const policyLoss = (
  batch: ReadonlyArray<PolicyLossTrajectory>,
  config: PolicyLossConfig = {},
): PolicyLossResult => policyLossResolved(batch, resolvePolicyLoss(config));

/** {@link policyLoss} with settings already resolved by `resolvePolicyLoss` (skips the lookup). */
export const policyLossResolved = (
  batch: ReadonlyArray<PolicyLossTrajectory>,
  settings: ResolvedPolicyLoss,
): PolicyLossResult => {
  const B = batch.length;
  if (B === 0) throw inputError("batch", "the batch is empty; expected at least one trajectory");
  const segment = settings.segment;
  const kind =
    segment === undefined && settings.units === "token"
      ? TOKEN
      : segment === undefined && settings.units === "sequence"
        ? SEQUENCE
        : IDS;
  const surrogate = settings.surrogate;
  const beta = settings.klCoef;
  const klOn = beta > 0;
  const estimator = settings.klEstimator === "k1" ? K1 : settings.klEstimator === "k2" ? K2 : 3;

  // ── pass 0: shapes, and how many unit slots each trajectory may need ──
  const unitStart = new Int32Array(B + 1);
  for (let i = 0; i < B; i++) {
    const trajectory = batch[i]!;
    if (trajectory == null || typeof trajectory !== "object")
      throw inputError("batch", `entry is ${describe(trajectory)}; expected a trajectory object`, i);
    const { mask, logpNew, logpOld, logpRef, segments, advantage } = trajectory;
    if (!isArrayLike(mask)) throw inputError("mask", "mask is missing or not an array", i);
    const n = mask.length;
    if (!isArrayLike(logpNew)) throw inputError("logpNew", "logpNew is missing or not an array", i);
    if (logpNew.length !== n)
      throw inputError("logpNew", `logpNew has length ${logpNew.length}, mask has length ${n}`, i);
    if (!isArrayLike(logpOld)) throw inputError("logpOld", "logpOld is missing or not an array", i);
    if (logpOld.length !== n)
      throw inputError("logpOld", `logpOld has length ${logpOld.length}, mask has length ${n}`, i);
    if (logpRef !== undefined) {
      if (!isArrayLike(logpRef)) throw inputError("logpRef", "logpRef is not an array", i);
      if (logpRef.length !== n)
        throw inputError("logpRef", `logpRef has length ${logpRef.length}, mask has length ${n}`, i);
    } else if (klOn)
      throw inputError(
        "logpRef",
        `logpRef is missing; klCoef is ${beta} > 0, which needs reference log-probabilities`,
        i,
      );
    if (segments !== undefined) {
      if (!isArrayLike(segments)) throw inputError("segments", "segments is not an array", i);
      if (segments.length !== n)
        throw inputError("segments", `segments has length ${segments.length}, mask has length ${n}`, i);
    }
    if (typeof advantage !== "number" || !Number.isFinite(advantage))
      throw inputError("advantage", `advantage is ${describe(advantage)}; expected a finite number`, i);
    const slots = kind === SEQUENCE ? 1 : n;
    unitStart[i + 1] = unitStart[i]! + slots;
  }

  const slots = unitStart[B]!;
  const unitSum = new Float64Array(slots); // Σ (logpNew − logpOld) per unit; later the unit's g = −A·s_u or 0
  const unitCount = new Int32Array(slots);
  const unitEnd = new Int32Array(B);
  const masked = new Int32Array(B);
  const klSum = new Float64Array(B);
  const coefficients: Float64Array[] = new Array(B);
  const unitIds: Array<ArrayLike<number>> | undefined = kind === IDS ? new Array(B) : undefined;
  // Where an invalid unit id came from: the variant's segmentation or the trajectory's segments.
  const idsField = segment !== undefined ? "units" : "segments";

  // ── pass 1: validate masked values, sum log-ratios per unit, KL terms per token ──
  // With KL on, c[t] temporarily holds β·kl'_t; pass 2 turns it into w_t·(g_t + β·kl'_t).
  for (let i = 0; i < B; i++) {
    const trajectory = batch[i]!;
    const mask = trajectory.mask;
    const logpNew = trajectory.logpNew;
    const logpOld = trajectory.logpOld;
    const logpRef = trajectory.logpRef;
    const n = mask.length;
    const c = new Float64Array(n);
    coefficients[i] = c;
    const start = unitStart[i]!;
    // Unit ids (IDS only); any array stands in for token and sequence units, which never read it.
    let ids: ArrayLike<number> = c;
    if (unitIds !== undefined) {
      const segments = trajectory.segments ?? segmentsFromMask(mask);
      if (segment !== undefined) {
        ids = segment(mask, segments);
        if (!isArrayLike(ids) || ids.length !== n)
          throw inputError(
            "units",
            `variant ${settings.variant}: segment returned ${isArrayLike(ids) ? `length ${ids.length}` : describe(ids)}; expected one unit id per token (${n})`,
            i,
          );
      } else ids = segments;
      unitIds[i] = ids;
    }
    let next = start; // next unused unit slot (token)
    let maxId = -1; // largest unit id seen (IDS)
    let lastId = Number.NaN; // unit id of the previous masked token (IDS): a run of equal ids is checked once
    let u = start;
    let count = 0;
    let kl = 0;
    for (let t = 0; t < n; t++) {
      const m = mask[t];
      if (m === 1) {
        const d = logpNew[t]! - logpOld[t]!;
        if (!(d - d === 0)) throw nonFiniteError(trajectory, i, t, false);
        if (kind === TOKEN) u = next++;
        else if (kind === IDS) {
          const id = ids[t]!;
          if (id !== lastId) {
            if (!((id | 0) === id && id >= 0 && id < n))
              throw inputError(
                idsField,
                `${segment !== undefined ? `variant ${settings.variant}: unit id` : "segment id"} ${describe(id)} at masked position ${t}; expected an integer in [0, ${n})`,
                i,
                t,
              );
            lastId = id;
            u = start + id;
            if (id > maxId) maxId = id;
          }
        }
        unitSum[u]! += d;
        unitCount[u]!++;
        count++;
        if (klOn) {
          const r = logpRef![t]! - logpNew[t]!;
          if (!(r - r === 0)) throw nonFiniteError(trajectory, i, t, true);
          if (estimator === K1) {
            kl -= r;
            c[t] = beta;
          } else if (estimator === K2) {
            kl += 0.5 * r * r;
            c[t] = -beta * r;
          } else {
            const e = Math.exp(r);
            const raw = e - r - 1;
            if (raw > k3Clamp)
              kl += k3Clamp; // the clamp binds: constant, no gradient
            else {
              kl += raw; // raw ≥ 0, so the lower clamp (−10) never binds
              c[t] = beta * (1 - e);
            }
          }
        }
      } else {
        if (m !== 0) throw inputError("mask", `mask[${t}] is ${describe(m)}; expected 0 or 1`, i, t);
        if (kind === IDS && ids[t] !== -1)
          throw inputError(
            idsField,
            `${segment !== undefined ? `variant ${settings.variant}: unit id` : "segment id"} ${describe(ids[t])} at unmasked position ${t}; expected −1 where mask is 0`,
            i,
            t,
          );
      }
    }
    unitEnd[i] = kind === TOKEN ? next : kind === SEQUENCE ? start + (count > 0 ? 1 : 0) : start + maxId + 1;
    masked[i] = count;
    klSum[i] = kl;
  }

  // ── aggregation weights ──
  let tokens = 0;
  let nonEmpty = 0;
  for (let i = 0; i < B; i++) {
    tokens += masked[i]!;
    if (masked[i]! > 0) nonEmpty++;
  }
  // w_t per trajectory: 1/N, 1/(B'·n_i) or 1/B' (0 for a trajectory without masked tokens).
  const aggregation = settings.aggregation;
  const weight = new Float64Array(B);
  for (let i = 0; i < B; i++)
    if (masked[i]! > 0)
      weight[i] =
        aggregation === "token-mean"
          ? 1 / tokens
          : aggregation === "seq-mean-token-mean"
            ? 1 / (nonEmpty * masked[i]!)
            : 1 / nonEmpty;

  // ── per unit: ratio, clipping, loss; unitSum[u] becomes the unit's g ──
  const lower = 1 - settings.clipLow;
  const upper = 1 + settings.clipHigh;
  const dual = settings.dualClip;
  let loss = 0;
  let logRatioSum = 0;
  let units = 0;
  let clippedUnits = 0;
  let clippedTokens = 0;
  let ratioSum = 0;
  let ratioMin = Number.POSITIVE_INFINITY;
  let ratioMax = Number.NEGATIVE_INFINITY;
  let klTotal = 0;
  for (let i = 0; i < B; i++) {
    const w = weight[i]!;
    const A = batch[i]!.advantage;
    const end = unitEnd[i]!;
    for (let u = unitStart[i]!; u < end; u++) {
      const count = unitCount[u]!;
      if (count === 0) continue;
      const sum = unitSum[u]!;
      logRatioSum += sum;
      const mean = sum / count;
      const capped = mean > logRatioCap;
      const s = Math.exp(capped ? logRatioCap : mean);
      let l: number;
      let clipped = false;
      if (surrogate === undefined) {
        // The built-in clipped surrogate (clippedSurrogate), inline.
        const unclipped = -A * s;
        const clippedValue = -A * Math.min(Math.max(s, lower), upper);
        l = unclipped;
        if (clippedValue > unclipped) {
          l = clippedValue;
          clipped = true;
        }
        if (dual !== null && A < 0) {
          const floor = -A * dual;
          if (floor < l) {
            l = floor;
            clipped = true;
          }
        }
        // + 0 turns −0 (A = 0) into 0.
        unitSum[u] = clipped || capped ? 0 : unclipped + 0;
      } else {
        const r = surrogate(
          { logRatio: capped ? logRatioCap : mean, ratio: s, advantage: A, tokens: count },
          settings,
        );
        if (
          r == null ||
          typeof r.value !== "number" ||
          typeof r.slope !== "number" ||
          !Number.isFinite(r.value) ||
          !Number.isFinite(r.slope)
        )
          throw inputError(
            "surrogate",
            `variant ${settings.variant}: surrogate returned ${r == null ? describe(r) : `value ${describe(r.value)}, slope ${describe(r.slope)}`} for a unit with ratio ${s} and advantage ${A}; expected finite numbers`,
            i,
          );
        l = r.value;
        clipped = r.clipped === true;
        unitSum[u] = capped ? 0 : r.slope + 0;
      }
      loss += w * count * l;
      units++;
      if (clipped) {
        clippedUnits++;
        clippedTokens += count;
      }
      ratioSum += s;
      if (s < ratioMin) ratioMin = s;
      if (s > ratioMax) ratioMax = s;
    }
    if (klOn) {
      loss += beta * w * klSum[i]!;
      klTotal += klSum[i]!;
    }
  }

  // ── pass 2: c_t = w_t·g_u + w_t·β·kl'_t over masked tokens ──
  for (let i = 0; i < B; i++) {
    if (masked[i] === 0) continue;
    const mask = batch[i]!.mask;
    const c = coefficients[i]!;
    const w = weight[i]!;
    const n = mask.length;
    const start = unitStart[i]!;
    if (kind === SEQUENCE) {
      const v = w * unitSum[start]!;
      for (let t = 0; t < n; t++) if (mask[t] === 1) c[t] = v + w * c[t]!;
    } else if (kind === TOKEN) {
      let u = start;
      for (let t = 0; t < n; t++) if (mask[t] === 1) c[t] = w * unitSum[u++]! + w * c[t]!;
    } else {
      const ids = unitIds![i]!;
      let lastId = Number.NaN;
      let v = 0;
      for (let t = 0; t < n; t++)
        if (mask[t] === 1) {
          const id = ids[t]!;
          if (id !== lastId) {
            lastId = id;
            v = w * unitSum[start + id]!;
          }
          c[t] = v + w * c[t]!;
        }
    }
  }

  const metrics: PolicyLossMetrics = {
    clipFraction: tokens === 0 ? 0 : clippedTokens / tokens,
    unitClipFraction: units === 0 ? 0 : clippedUnits / units,
    approxKl: tokens === 0 ? 0 : -logRatioSum / tokens,
    ratioMean: units === 0 ? Number.NaN : ratioSum / units,
    ratioMin: units === 0 ? Number.NaN : ratioMin,
    ratioMax: units === 0 ? Number.NaN : ratioMax,
    units,
    tokens,
    ...(klOn && { klMean: tokens === 0 ? 0 : klTotal / tokens }),
  };
  return { loss, coefficients, metrics };
};
