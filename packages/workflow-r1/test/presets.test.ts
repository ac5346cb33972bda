/**
 * Every config shipped in presets/ is a valid training config (the Schema decodes it over the
 * default), so `--preset NAME` and `compare -c presets/NAME.yaml` never fail on the file itself.
 */
import { describe, expect, it } from "vitest";
import { resolveConfig } from "../src/config.js";
import { presetFile, presetNames } from "../src/presets.js";

describe("shipped presets", () => {
  it("lists the presets the README and REPRODUCING.md name", () => {
    expect(presetNames()).toEqual(
      expect.arrayContaining(["gpu", "workflow-r1-paper", "workflow-r1-lora", "compare-long-episodes"]),
    );
  });

  it.each(presetNames())("%s validates", (name) => {
    expect(() => resolveConfig({ file: presetFile(name) })).not.toThrow();
  });

  it("compare-long-episodes: several cycles of unequal length, several mini-batches per rollout", () => {
    const config = resolveConfig({ file: presetFile("compare-long-episodes") });
    expect(config.environment.name).toBe("synthetic");
    expect(config.environment.options["difficulty"]).toEqual([2, 4]);
    expect(config.environment.options["distractors"]).toEqual([0, 3]);
    expect(config.algorithm.miniBatches).toBeGreaterThan(1);
  });
});
