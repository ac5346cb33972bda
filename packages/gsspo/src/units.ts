/**
 * Unit ids per token. A Think-Action cycle is core's definition (`Trajectory.segments`, from
 * `segmentsFromMask`): sub-sequence units are those segments, used as they are, never re-derived.
 */
import { segmentsFromMask } from "@workflow-r1/core";
import { PolicyLossInputError } from "./errors.js";
import type { UnitKind } from "./types.js";

/** What {@link unitsOf} reads of a trajectory: its mask and, when known, its segments. */
export interface UnitSource {
  readonly mask: ArrayLike<number>;
  /** `Trajectory.segments`; absent: `segmentsFromMask(mask)`. */
  readonly segments?: ArrayLike<number> | undefined;
}

/** The trajectory's segments, or core's `segmentsFromMask(mask)` when it carries none. */
export const segmentsOf = (trajectory: UnitSource): ArrayLike<number> =>
  trajectory.segments ?? segmentsFromMask(trajectory.mask);

/**
 * Unit id of every token of one trajectory (−1 where mask is 0):
 * - `token`: the masked tokens numbered 0, 1, 2, … in order;
 * - `sequence`: 0 for every masked token;
 * - `subsequence`: the trajectory's segments (one id per Think-Action cycle), copied.
 */
export const unitsOf = (trajectory: UnitSource, units: UnitKind): Int32Array => {
  if (units === "subsequence") return Int32Array.from(segmentsOf(trajectory));
  if (units !== "token" && units !== "sequence")
    throw new PolicyLossInputError({
      field: "units",
      message: `units is ${JSON.stringify(units)}; expected one of token, sequence, subsequence`,
    });
  const mask = trajectory.mask;
  const ids = new Int32Array(mask.length);
  let next = 0;
  for (let t = 0; t < mask.length; t++) {
    if (mask[t] === 1) ids[t] = units === "token" ? next++ : 0;
    else ids[t] = -1;
  }
  return ids;
};

/** {@link unitsOf} for a bare mask (sub-sequences from core's `segmentsFromMask`). */
export const unitsFromMask = (mask: ArrayLike<number>, units: UnitKind): Int32Array =>
  unitsOf({ mask }, units);

/** Number of distinct units in an id array from {@link unitsOf} or a custom segmentation. */
export const unitCount = (ids: ArrayLike<number>): number => {
  const seen = new Set<number>();
  for (let t = 0; t < ids.length; t++) if (ids[t]! >= 0) seen.add(ids[t]!);
  return seen.size;
};
