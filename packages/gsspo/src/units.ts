import { segmentsFromMask } from "@workflow-r1/core";
import { PolicyLossInputError } from "./errors.js";
import type { UnitKind } from "./types.js";

/**
 * Unit id of every token of one trajectory (−1 where mask is 0):
 * - `token`: the masked tokens numbered 0, 1, 2, … in order;
 * - `sequence`: 0 for every masked token;
 * - `subsequence`: one id per maximal run of mask 1 (core's `segmentsFromMask`).
 */
export const unitsFromMask = (mask: ArrayLike<number>, units: UnitKind): Int32Array => {
  if (units === "subsequence") return segmentsFromMask(mask);
  if (units !== "token" && units !== "sequence")
    throw new PolicyLossInputError({
      field: "units",
      message: `units is ${JSON.stringify(units)}; expected one of token, sequence, subsequence`,
    });
  const ids = new Int32Array(mask.length);
  let next = 0;
  for (let t = 0; t < mask.length; t++) {
    if (mask[t] === 1) ids[t] = units === "token" ? next++ : 0;
    else ids[t] = -1;
  }
  return ids;
};

/** Number of distinct units in an id array from {@link unitsFromMask} or a custom segmentation. */
export const unitCount = (ids: ArrayLike<number>): number => {
  const seen = new Set<number>();
  for (let t = 0; t < ids.length; t++) if (ids[t]! >= 0) seen.add(ids[t]!);
  return seen.size;
};
