import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { backendsDirectory, loadAddon, packTokens, planPackedBatches } from "../src/index.js";

describe("planPackedBatches", () => {
  it("packs every sequence once into rows of one aligned length, within the token budget", () => {
    const lengths = [5, 40, 12, 12, 3, 33, 8, 64, 100, 7];
    const plans = planPackedBatches(lengths, 256, 512);
    const seen = plans.flatMap((p) => p.placements.map((x) => x.sequence)).sort((a, b) => a - b);
    expect(seen).toEqual(lengths.map((_, i) => i));
    for (const p of plans) {
      expect(p.length).toBe(128); // longest 100, rounded up to ROW_ALIGN
      expect(p.length * p.rows).toBeLessThanOrEqual(256);
      // No two sequences overlap within a row, and each fits.
      for (let row = 0; row < p.rows; row++) {
        const spans = p.placements
          .filter((x) => x.row === row)
          .map((x) => [x.offset, x.offset + lengths[x.sequence]])
          .sort((a, b) => a[0] - b[0]);
        for (let i = 0; i < spans.length; i++) {
          expect(spans[i][1]).toBeLessThanOrEqual(p.length);
          if (i > 0) expect(spans[i][0]).toBeGreaterThanOrEqual(spans[i - 1][1]);
        }
      }
    }
    // 284 tokens need at least 3 rows of 128; first-fit decreasing uses exactly 3.
    expect(plans.reduce((n, p) => n + p.rows, 0)).toBe(3);
  });

  it("gives a sequence longer than the budget a row of its own, and never exceeds the context", () => {
    const plans = planPackedBatches([100, 2, 3], 10, 100);
    expect(plans[0]).toMatchObject({ length: 100, rows: 1 });
    expect(plans.flatMap((p) => p.placements).length).toBe(3);
  });

  it("lays out tokens with a segment id per packed sequence and −1 for padding", () => {
    const seqs = [{ tokens: [1, 2, 3] }, { tokens: [4, 5] }];
    const [plan] = planPackedBatches([3, 2], 64, 64);
    const { tokens, segments } = packTokens(plan, seqs);
    expect(Array.from(tokens.slice(0, 6))).toEqual([1, 2, 3, 4, 5, 0]);
    expect(Array.from(segments.slice(0, 6))).toEqual([0, 0, 0, 1, 1, -1]);
  });
});

describe("native addon", () => {
  it("loads and agrees with the ggml it links (version, tensor overhead, last op)", () => {
    const addon = loadAddon();
    expect(addon.abiProblem()).toBe("");
    // The prebuilt library reports the version the bundled headers declare.
    const cmake = readFileSync(
      join(import.meta.dirname, "..", "build", "llama.cpp", "ggml", "CMakeLists.txt"),
      "utf8",
    );
    const part = (k: string) => new RegExp(`set\\(GGML_VERSION_${k} (\\d+)\\)`).exec(cmake)?.[1];
    expect(addon.ggmlVersion()).toBe(`${part("MAJOR")}.${part("MINOR")}.${part("PATCH")}`);
    expect(backendsDirectory()).toMatch(/bins\/linux-x64/);
  });
});
