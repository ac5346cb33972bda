/**
 * The summary statistics every package reports with (metrics, tables, evaluation, algorithm
 * comparisons). Plain functions over numbers; the algorithm's per-group statistics over typed
 * arrays live with the loss.
 */
import { mulberry32 } from "./random.js";

/** Arithmetic mean; `ifEmpty` (default NaN) for no values. */
export const mean = (values: ArrayLike<number>, ifEmpty = Number.NaN): number => {
  if (values.length === 0) return ifEmpty;
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]!;
  return sum / values.length;
};

/** Unbiased sample standard deviation (n − 1); 0 for fewer than two values. */
export const sampleStd = (values: ArrayLike<number>): number => {
  if (values.length < 2) return 0;
  const m = mean(values);
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += (values[i]! - m) ** 2;
  return Math.sqrt(sum / (values.length - 1));
};

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
