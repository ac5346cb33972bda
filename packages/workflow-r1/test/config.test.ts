import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ConfigError } from "@workflow-r1/core";
import { describe, expect, it } from "vitest";
import { loadAlgorithm } from "../src/algorithms.js";
import { defaultTrainConfig, resolveConfig, setPath } from "../src/config.js";

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "wr1-config-"));

describe("training config", () => {
  it("the embedded default validates as is", () => {
    expect(resolveConfig()).toEqual(defaultTrainConfig);
  });

  it("merges a YAML file and flag overrides over the default", () => {
    const file = path.join(tmp(), "run.yaml");
    fs.writeFileSync(file, "steps: 12\nalgorithm:\n  name: grpo\n  clipLow: 0.1\nrollout:\n  groupSize: 4\n");
    const overrides: Record<string, unknown> = {};
    setPath(overrides, "learner.learningRate", "5e-4");
    const config = resolveConfig({ file, overrides });
    expect(config.steps).toBe(12);
    expect(config.algorithm.name).toBe("grpo");
    expect(config.algorithm.clipLow).toBe(0.1);
    expect(config.rollout.groupSize).toBe(4);
    expect(config.rollout.tasksPerStep).toBe(defaultTrainConfig.rollout.tasksPerStep);
    expect(config.learner.learningRate).toBe(5e-4);
  });

  it("reads JSON files", () => {
    const file = path.join(tmp(), "run.json");
    fs.writeFileSync(file, JSON.stringify({ seed: 7 }));
    expect(resolveConfig({ file }).seed).toBe(7);
  });

  it("rejects bad values naming the field and the file", () => {
    const file = path.join(tmp(), "bad.yaml");
    fs.writeFileSync(file, "rollout:\n  groupSize: 0\nlearner:\n  learningRate: -1\n");
    try {
      resolveConfig({ file });
      expect.fail("expected a ConfigError");
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      const message = (error as ConfigError).message;
      expect(message).toContain(file);
      expect(message).toContain("groupSize");
      expect(message).toContain("learningRate");
    }
  });

  it("rejects unknown fields (typos) and unparsable files", () => {
    expect(() => resolveConfig({ overrides: { rollout: { groupSzie: 4 } } })).toThrow(/groupSzie/);
    const file = path.join(tmp(), "broken.json");
    fs.writeFileSync(file, "{ nope");
    expect(() => resolveConfig({ file })).toThrow(/cannot parse config file/);
    expect(() => resolveConfig({ file: "/nonexistent/x.yaml" })).toThrow(/cannot read config file/);
  });

  it("the update plan lives under algorithm; the old learner.ppoEpochs / learner.miniBatches still work", () => {
    expect(defaultTrainConfig.algorithm).toMatchObject({ ppoEpochs: 1, miniBatches: 4 });
    expect(defaultTrainConfig.learner).not.toHaveProperty("miniBatches");
    const file = path.join(tmp(), "old.yaml");
    fs.writeFileSync(file, "learner:\n  ppoEpochs: 2\n  miniBatches: 8\n  learningRate: 1e-4\n");
    const config = resolveConfig({ file });
    expect(config.algorithm).toMatchObject({ ppoEpochs: 2, miniBatches: 8 });
    expect(config.learner).not.toHaveProperty("miniBatches");
    expect(config.learner.learningRate).toBe(1e-4);
    // the same value in both places is fine; different values name both keys
    expect(
      resolveConfig({ overrides: { algorithm: { miniBatches: 2 }, learner: { miniBatches: 2 } } }).algorithm
        .miniBatches,
    ).toBe(2);
    expect(() => resolveConfig({ file, overrides: { algorithm: { miniBatches: 2 } } })).toThrow(
      /learner\.miniBatches moved to algorithm\.miniBatches/,
    );
  });

  it("the algorithm section is gsspo's Schema: its options validate, a setting the variant refuses names algorithm.<field>", async () => {
    const config = resolveConfig({
      overrides: { algorithm: { name: "grpo", units: "sequence", dropUniformGroups: false, eps: 1e-8 } },
    });
    const algorithm = await loadAlgorithm(config.algorithm);
    expect(algorithm.settings).toMatchObject({ variant: "grpo", units: "sequence", dualClip: 3 });
    expect(algorithm.config).toMatchObject({ dropUniformGroups: false, eps: 1e-8, miniBatches: 4 });
    expect(() => resolveConfig({ overrides: { algorithm: { ppoEpochs: 0 } } })).toThrow(/ppoEpochs/);
    expect(() => resolveConfig({ overrides: { algorithm: { units: "turn" } } })).toThrow(/units/);
    const infinite = resolveConfig({ overrides: { algorithm: { eps: Number.POSITIVE_INFINITY } } });
    await expect(loadAlgorithm(infinite.algorithm)).rejects.toMatchObject({
      _tag: "ConfigError",
      field: "algorithm.eps",
    });
  });
});
