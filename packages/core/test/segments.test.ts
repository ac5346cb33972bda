import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { segmentCount, segmentsFromMask } from "../src/index.js";

describe("segmentsFromMask", () => {
  it("numbers maximal runs of mask 1 and marks mask 0 with -1", () => {
    expect(Array.from(segmentsFromMask([0, 0, 1, 1, 0, 1, 0, 0, 1, 1, 1]))).toEqual([
      -1, -1, 0, 0, -1, 1, -1, -1, 2, 2, 2,
    ]);
  });

  it("handles empty, all-zero and all-one masks", () => {
    expect(Array.from(segmentsFromMask([]))).toEqual([]);
    expect(Array.from(segmentsFromMask([0, 0]))).toEqual([-1, -1]);
    expect(Array.from(segmentsFromMask([1, 1, 1]))).toEqual([0, 0, 0]);
  });

  it("has one segment per run, each contiguous, for random masks", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 1 }), { maxLength: 200 }), (mask) => {
        const segments = segmentsFromMask(mask);
        let runs = 0;
        for (let t = 0; t < mask.length; t++) if (mask[t] === 1 && (t === 0 || mask[t - 1] === 0)) runs++;
        expect(segmentCount(segments)).toBe(runs);
        for (let t = 1; t < mask.length; t++) {
          if (mask[t] === 1 && mask[t - 1] === 1) expect(segments[t]).toBe(segments[t - 1]);
          if (mask[t] === 1 && mask[t - 1] === 0)
            expect(segments[t]).toBe(Math.max(-1, ...segments.slice(0, t)) + 1);
        }
      }),
    );
  });
});
