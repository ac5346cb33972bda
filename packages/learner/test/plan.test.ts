import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { backendsDirectory, loadAddon, planMicroBatches } from "../src/index.js";

describe("planMicroBatches", () => {
  it("keeps every padded micro-batch within the token budget and covers each sequence once", () => {
    const lengths = [5, 40, 12, 12, 3, 33, 8, 64];
    const groups = planMicroBatches(lengths, 64);
    expect(groups.flat().sort((a, b) => a - b)).toEqual(lengths.map((_, i) => i));
    for (const g of groups) expect(Math.max(...g.map((i) => lengths[i])) * g.length).toBeLessThanOrEqual(64);
    // Longest first, so similar lengths share padding.
    expect(groups[0]).toEqual([7]);
  });

  it("puts a sequence longer than the budget alone in its own micro-batch", () => {
    expect(planMicroBatches([100, 2, 3], 10)).toEqual([[0], [2, 1]]);
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
