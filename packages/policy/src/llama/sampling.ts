/**
 * Sampling from raw logits when the native sampler's confidence is not the quantity the learner
 * needs (temperature ≠ 1 or truncation): the token is drawn here and its temperature-1
 * log-probability computed from the same logits.
 */
import type { SamplingOptions } from "@workflow-r1/core";

export const isTruncating = (o: SamplingOptions, vocab: number) =>
  (o.topK !== undefined && o.topK > 0 && o.topK < vocab) || (o.topP !== undefined && o.topP < 1);

/** Sample from raw logits with temperature / top-k / top-p; returns the token and its temperature-1 log-prob. */
export const sampleFromLogits = (
  logits: Map<number, number>,
  o: SamplingOptions,
  u: number,
): { token: number; logprob: number } => {
  const entries = [...logits.entries()].sort((a, b) => b[1] - a[1]);
  const max = entries[0][1];
  let z1 = 0;
  for (const [, l] of entries) z1 += Math.exp(l - max);
  const logZ = max + Math.log(z1);
  const t = o.temperature ?? 1;
  let chosen: number;
  if (t <= 0) chosen = entries[0][0];
  else {
    let cand = entries;
    if (o.topK !== undefined && o.topK > 0) cand = cand.slice(0, o.topK);
    const w = cand.map(([, l]) => Math.exp((l - max) / t));
    let total = w.reduce((a, b) => a + b, 0);
    if (o.topP !== undefined && o.topP < 1) {
      let acc = 0;
      let keep = 0;
      while (keep < w.length) {
        acc += w[keep] / total;
        keep++;
        if (acc >= o.topP) break;
      }
      cand = cand.slice(0, keep);
      w.length = keep;
      total = w.reduce((a, b) => a + b, 0);
    }
    let r = u * total;
    let i = 0;
    while (i < w.length - 1 && r >= w[i]) {
      r -= w[i];
      i++;
    }
    chosen = cand[i][0];
  }
  return { token: chosen, logprob: (logits.get(chosen) ?? Number.NEGATIVE_INFINITY) - logZ };
};
