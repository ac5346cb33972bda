/**
 * The summary statistics every package reports with (metrics, tables, evaluation). Plain functions
 * over numbers; the algorithm's per-group statistics over typed arrays live with the loss.
 */

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
