/**
 * Every config shipped in presets/ is a valid training config (the Schema decodes it over the
 * default), so `--preset NAME` and `compare -c presets/NAME.yaml` never fail on the file itself.
 */
import { describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { decodeEnvironmentOptions, resolveEnvironment } from "../src/environments.js";
import { presetFile, presetNames } from "../src/presets.js";
import { run } from "./fixtures/effects.js";

const names = await run(presetNames);
const preset = async (name: string) => run(loadConfig({ file: await run(presetFile(name)) }));

describe("shipped presets", () => {
  it("lists the presets the README and REPRODUCING.md name", () => {
    expect(names).toEqual(
      expect.arrayContaining(["gpu", "workflow-r1-paper", "workflow-r1-lora", "compare-long-episodes"]),
    );
  });

  it.each(names)("%s validates, its environment options included", async (name) => {
    const config = await preset(name);
    const plugin = await run(resolveEnvironment(config.environment.name));
    await expect(run(decodeEnvironmentOptions(plugin, config.environment.options))).resolves.toBeDefined();
  });

  it("compare-long-episodes: several cycles of unequal length, several mini-batches per rollout", async () => {
    const config = await preset("compare-long-episodes");
    expect(config.environment.name).toBe("synthetic");
    expect(config.environment.options["difficulty"]).toEqual([2, 4]);
    expect(config.environment.options["distractors"]).toEqual([0, 3]);
    expect(config.algorithm.miniBatches).toBeGreaterThan(1);
    // Enough training tasks that the warm start cannot memorise them (it did with the default 512).
    expect(Number(config.environment.options["trainTasks"])).toBeGreaterThanOrEqual(4096);
    expect(config.warmStart.steps).toBeGreaterThanOrEqual(1000);
  });
});
