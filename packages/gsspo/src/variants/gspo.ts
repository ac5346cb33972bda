import type { PolicyLossDefinition } from "../types.js";

/** GSPO: one length-normalised ratio per trajectory, clipped tightly (3e-4 / 4e-4). */
export const gspo: PolicyLossDefinition = {
  description: "GSPO: one geometric-mean ratio per trajectory (clip 3e-4/4e-4), seq-mean-token-mean",
  defaults: {
    units: "sequence",
    clipLow: 3e-4,
    clipHigh: 4e-4,
    dualClip: null,
    aggregation: "seq-mean-token-mean",
  },
};
