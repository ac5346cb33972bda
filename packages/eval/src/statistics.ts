/**
 * Statistics of per-question scores: means, seeded bootstrap confidence intervals, and the
 * unbiased pass@k estimator of Chen et al. (2021, "Evaluating Large Language Models Trained on Code").
 */

import { mean, mulberry32 } from "@workflow-r1/core";

/** A mean with its bootstrap confidence interval. */
export interface Estimate {
  readonly mean: number;
  /** Lower end of the confidence interval. */
  readonly low: number;
  /** Upper end of the confidence interval. */
  readonly high: number;
  /** Number of values the estimate is computed from. */
  readonly n: number;
}

export interface BootstrapOptions {
  /** Number of resamples (default 1000). */
  readonly resamples?: number;
  /** Confidence level (default 0.95). */
  readonly confidence?: number;
  /** Seed of the resampling generator (default 0): the same inputs give the same interval. */
  readonly seed?: number;
}

/** Arithmetic mean; NaN for an empty list (core's `mean`, the one every package reports with). */
export { mean };

/** Linear-interpolated quantile of sorted values (type 7, as numpy's default). */
export const quantileSorted = (sorted: ArrayLike<number>, q: number): number => {
  if (sorted.length === 0) return Number.NaN;
  const position = (sorted.length - 1) * q;
  const lower = Math.floor(position);
  const upper = Math.ceil(position);
  const weight = position - lower;
  return sorted[lower]! * (1 - weight) + sorted[upper]! * weight;
};

/**
 * Mean and percentile-bootstrap confidence interval of the mean: `resamples` times, draw n values
 * with replacement and take their mean; the interval is the (1-c)/2 and (1+c)/2 quantiles of
 * those means. Seeded, so reports are reproducible.
 */
export const bootstrapMean = (values: ArrayLike<number>, options: BootstrapOptions = {}): Estimate => {
  const n = values.length;
  const resamples = options.resamples ?? 1000;
  const confidence = options.confidence ?? 0.95;
  if (!(confidence > 0 && confidence < 1))
    throw new RangeError(`confidence must be in (0, 1), got ${confidence}`);
  if (!(Number.isInteger(resamples) && resamples > 0))
    throw new RangeError(`resamples must be a positive integer, got ${resamples}`);
  const m = mean(values);
  if (n === 0) return { mean: Number.NaN, low: Number.NaN, high: Number.NaN, n };
  const random = mulberry32(options.seed ?? 0);
  const means = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += values[Math.floor(random() * n)]!;
    means[r] = sum / n;
  }
  means.sort();
  const alpha = (1 - confidence) / 2;
  // Guard against floating-point drift when every value is equal (all means identical).
  const low = Math.min(quantileSorted(means, alpha), m);
  const high = Math.max(quantileSorted(means, 1 - alpha), m);
  return { mean: m, low, high, n };
};

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
