/**
 * Segment index per token: each maximal run of mask 1 is one segment (one Think-Action cycle),
 * numbered from 0 in order; positions with mask 0 get -1.
 */
export const segmentsFromMask = (mask: ArrayLike<number>): Int32Array => {
  const segments = new Int32Array(mask.length);
  let next = 0;
  let inside = false;
  for (let t = 0; t < mask.length; t++) {
    if (mask[t] === 1) {
      if (!inside) {
        inside = true;
        next++;
      }
      segments[t] = next - 1;
    } else {
      inside = false;
      segments[t] = -1;
    }
  }
  return segments;
};

/** Number of segments in a segment array produced by {@link segmentsFromMask}. */
export const segmentCount = (segments: ArrayLike<number>): number => {
  let max = -1;
  for (let t = 0; t < segments.length; t++) if (segments[t]! > max) max = segments[t]!;
  return max + 1;
};
