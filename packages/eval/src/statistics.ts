/**
 * Statistics of per-question scores: the unbiased pass@k estimator of Chen et al. (2021, "Evaluating
 * Large Language Models Trained on Code") and mean@k. Means and seeded bootstrap confidence
 * intervals are core's (`@workflow-r1/core`), re-exported here for evaluation users.
 */

import { mean } from "@workflow-r1/core";

export { type BootstrapOptions, bootstrapMean, type Estimate, mean, quantileSorted } from "@workflow-r1/core";

/**
 * Unbiased estimator of pass@k from n samples of which c are correct:
 * 1 - C(n-c, k) / C(n, k), computed as a running product for numerical stability.
 */
export const passAtK = (n: number, c: number, k: number): number => {
  if (!Number.isInteger(n) || !Number.isInteger(c) || !Number.isInteger(k))
    throw new RangeError(`passAtK needs integers, got n=${n} c=${c} k=${k}`);
  if (n < 1 || c < 0 || c > n || k < 1 || k > n)
    throw new RangeError(`passAtK needs 0 <= c <= n and 1 <= k <= n, got n=${n} c=${c} k=${k}`);
  if (n - c < k) return 1;
  let product = 1;
  for (let i = n - c + 1; i <= n; i++) product *= 1 - k / i;
  return 1 - product;
};

/**
 * mean@k: the expected score of one sample, estimated as the mean over the k samples drawn for a
 * question (for 0/1 scores this equals pass@1).
 */
export const meanAtK = (scores: ArrayLike<number>): number => mean(scores);

/** The k values reported for `samples` samples per question: 1, 2, 4, … and `samples` itself. */
export const passKLadder = (samples: number): number[] => {
  const ks: number[] = [];
  for (let k = 1; k < samples; k *= 2) ks.push(k);
  if (samples >= 1) ks.push(samples);
  return ks;
};
