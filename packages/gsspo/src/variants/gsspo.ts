import type { PolicyLossDefinition } from "../types.js";

/** GSsPO: one length-normalised ratio per Think-Action cycle (maximal run of mask 1). */
export const gsspo: PolicyLossDefinition = {
  description: "GSsPO: one geometric-mean ratio per sub-sequence (clip 3e-4/4e-4), seq-mean-token-mean",
  defaults: {
    units: "subsequence",
    clipLow: 3e-4,
    clipHigh: 4e-4,
    dualClip: null,
    aggregation: "seq-mean-token-mean",
  },
};
