import type { PolicyLossDefinition } from "../types.js";

/** GRPO: every masked token is its own unit — the ordinary PPO ratio, clipped at 1 ± 0.2, dual clip 3. */
export const grpo: PolicyLossDefinition = {
  description: "GRPO: per-token importance ratios (PPO clip 0.2/0.2, dual clip 3), token-mean",
  defaults: {
    units: "token",
    clipLow: 0.2,
    clipHigh: 0.2,
    dualClip: 3,
    aggregation: "token-mean",
  },
};
