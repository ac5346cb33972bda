/**
 * The built-in per-unit objective of the family as a {@link Surrogate}: what the loss computes
 * inline when a variant brings no surrogate of its own. Exported for variants that wrap or compare
 * with it; a variant with `surrogate: clippedSurrogate` gives bit-identical results to the built-in.
 */
import type { Surrogate } from "./types.js";

/**
 * `ℓ = max(−A·s, −A·clip(s, 1 − εlow, 1 + εhigh))`, then for A < 0 with a dual clip c:
 * `ℓ = min(ℓ, −A·c)`. Clipped (the clipped branch strictly larger, or the dual clip binding): slope
 * 0; otherwise slope −A·s (dℓ/dlogS = s·dℓ/ds).
 */
export const clippedSurrogate: Surrogate = (unit, settings) => {
  const A = unit.advantage;
  const s = unit.ratio;
  const unclipped = -A * s;
  const clippedValue = -A * Math.min(Math.max(s, 1 - settings.clipLow), 1 + settings.clipHigh);
  let value = unclipped;
  let clipped = false;
  if (clippedValue > unclipped) {
    value = clippedValue;
    clipped = true;
  }
  if (settings.dualClip !== null && A < 0) {
    const floor = -A * settings.dualClip;
    if (floor < value) {
      value = floor;
      clipped = true;
    }
  }
  // + 0 turns −0 (A = 0) into 0.
  return { value, slope: clipped ? 0 : unclipped + 0, clipped };
};
