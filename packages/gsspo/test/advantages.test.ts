import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AdvantageInputError, groupAdvantages } from "../src/index.js";

describe("groupAdvantages", () => {
  it("normalises each group by its unbiased std (hand-checked)", () => {
    // group "a": rewards 1, 0, 0, 1 → mean 0.5, Σ(r−m)² = 4·0.25 = 1, std = √(1/3) ≈ 0.57735
    //   A = ±0.5 / (0.57735 + 1e-6)
    // group "b": rewards 2, 4 → mean 3, std = √((1 + 1)/1) = √2, A = ∓1/(√2 + 1e-6)
    const a = groupAdvantages([1, 2, 0, 0, 4, 1], ["a", "b", "a", "a", "b", "a"]);
    const da = Math.sqrt(1 / 3) + 1e-6;
    const db = Math.SQRT2 + 1e-6;
    const expected = [0.5 / da, -1 / db, -0.5 / da, -0.5 / da, 1 / db, 0.5 / da];
    for (let i = 0; i < expected.length; i++) expect(a[i]).toBeCloseTo(expected[i]!, 12);
  });

  it("group of one: r / (1 + eps); Dr. GRPO: r − mean, size one: r", () => {
    const single = groupAdvantages([3, 1, 2], [7, 8, 8]);
    expect(single[0]).toBeCloseTo(3 / (1 + 1e-6), 14);
    const dr = groupAdvantages([3, 1, 2], [7, 8, 8], { normalizeByStd: false });
    expect(Array.from(dr)).toEqual([3, -0.5, 0.5]);
    const eps = groupAdvantages([3], [0], { eps: 0.5 });
    expect(eps[0]).toBeCloseTo(2, 14);
  });

  it("uniform groups give 0; numeric and string ids are different groups", () => {
    expect(Array.from(groupAdvantages([1, 1, 1], ["g", "g", "g"]))).toEqual([0, 0, 0]);
    // 1 and "1" are distinct: two groups of one
    const a = groupAdvantages([2, 4], [1, "1"]);
    expect(a[0]).toBeCloseTo(2 / (1 + 1e-6), 14);
    expect(a[1]).toBeCloseTo(4 / (1 + 1e-6), 14);
    expect(groupAdvantages([], []).length).toBe(0);
  });

  it("property: per group, advantages have mean 0 and unbiased std ≈ 1 (when rewards vary)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.double({ min: -5, max: 5, noNaN: true })), {
          minLength: 1,
          maxLength: 30,
        }),
        (rows) => {
          const adv = groupAdvantages(
            rows.map((r) => r[1]),
            rows.map((r) => r[0]),
            { eps: 0 },
          );
          for (let g = 0; g < 4; g++) {
            const idx = rows.flatMap((r, i) => (r[0] === g ? [i] : []));
            if (idx.length < 2) continue;
            const rewards = idx.map((i) => rows[i]![1]);
            const spread = Math.max(...rewards) - Math.min(...rewards);
            if (spread < 1e-3) continue;
            const values = idx.map((i) => adv[i]!);
            const mean = values.reduce((s, v) => s + v, 0) / values.length;
            const variance = values.reduce((s, v) => s + (v - mean) ** 2, 0) / (values.length - 1);
            expect(mean).toBeCloseTo(0, 8);
            expect(variance).toBeCloseTo(1, 8);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it("rejects bad input with the field and trajectory", () => {
    const error = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e;
      }
      throw new Error("expected a throw");
    };
    const mismatch = error(() => groupAdvantages([1, 2], ["a"]));
    expect(mismatch).toBeInstanceOf(AdvantageInputError);
    expect(mismatch).toMatchObject({ _tag: "AdvantageInputError", field: "groupIds" });
    expect(error(() => groupAdvantages([1, Number.NaN], ["a", "a"]))).toMatchObject({
      field: "rewards",
      trajectory: 1,
    });
    expect(error(() => groupAdvantages([1, Number.POSITIVE_INFINITY], ["a", "a"]))).toMatchObject({
      field: "rewards",
      trajectory: 1,
    });
    expect(error(() => groupAdvantages([1], ["a"], { eps: -1 }))).toMatchObject({ field: "eps" });
    expect(error(() => groupAdvantages([1], [null as unknown as string]))).toMatchObject({
      field: "groupIds",
      trajectory: 0,
    });
  });
});
