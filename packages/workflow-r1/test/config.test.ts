import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ConfigError } from "@workflow-r1/core";
import { describe, expect, it } from "vitest";
import { loadAlgorithm } from "../src/algorithms.js";
import { defaultTrainConfig, loadConfig, setPath } from "../src/config.js";
import { failure, run } from "./fixtures/effects.js";

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "wr1-config-"));

describe("training config", () => {
  it("the embedded default validates as is", async () => {
    expect(await run(loadConfig())).toEqual(defaultTrainConfig);
  });

  it("merges a YAML file and flag overrides over the default", async () => {
    const file = path.join(tmp(), "run.yaml");
    fs.writeFileSync(file, "steps: 12\nalgorithm:\n  name: grpo\n  clipLow: 0.1\nrollout:\n  groupSize: 4\n");
    const overrides: Record<string, unknown> = {};
    setPath(overrides, "learner.learningRate", "5e-4");
    const config = await run(loadConfig({ file, overrides }));
    expect(config.steps).toBe(12);
    expect(config.algorithm.name).toBe("grpo");
    expect(config.algorithm.clipLow).toBe(0.1);
    expect(config.rollout.groupSize).toBe(4);
    expect(config.rollout.tasksPerStep).toBe(defaultTrainConfig.rollout.tasksPerStep);
    expect(config.learner.learningRate).toBe(5e-4);
  });

  it("reads JSON files", async () => {
    const file = path.join(tmp(), "run.json");
    fs.writeFileSync(file, JSON.stringify({ seed: 7 }));
    expect((await run(loadConfig({ file }))).seed).toBe(7);
  });

  it("rejects bad values naming the field and the file", async () => {
    const file = path.join(tmp(), "bad.yaml");
    fs.writeFileSync(file, "rollout:\n  groupSize: 0\nlearner:\n  learningRate: -1\n");
    const error = await failure(loadConfig({ file }));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toContain(file);
    expect(error.message).toContain("groupSize");
    expect(error.message).toContain("learningRate");
  });

  it("refuses more concurrent episodes than llama.cpp keeps sequences in one context (256)", async () => {
    expect(
      (await run(loadConfig({ overrides: { rollout: { maxConcurrentEpisodes: 256 } } }))).rollout
        .maxConcurrentEpisodes,
    ).toBe(256);
    const error = await failure(loadConfig({ overrides: { rollout: { maxConcurrentEpisodes: 512 } } }));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toContain('["rollout"]["maxConcurrentEpisodes"]');
    expect(error.message).toMatch(/at most 256: llama\.cpp keeps at most 256 sequences in one context/);
  });

  it("rejects unknown fields (typos) and unparsable files", async () => {
    expect((await failure(loadConfig({ overrides: { rollout: { groupSzie: 4 } } }))).message).toMatch(
      /groupSzie/,
    );
    const file = path.join(tmp(), "broken.json");
    fs.writeFileSync(file, "{ nope");
    expect((await failure(loadConfig({ file }))).message).toMatch(/cannot parse config file/);
    const missing = await failure(loadConfig({ file: "/nonexistent/x.yaml" }));
    expect(missing).toMatchObject({ _tag: "ConfigError", file: "/nonexistent/x.yaml" });
    expect(missing.message).toMatch(/cannot read config file/);
  });

  it("the update plan lives under algorithm; the old learner.ppoEpochs / learner.miniBatches still work", async () => {
    expect(defaultTrainConfig.algorithm).toMatchObject({ ppoEpochs: 1, miniBatches: 4 });
    expect(defaultTrainConfig.learner).not.toHaveProperty("miniBatches");
    const file = path.join(tmp(), "old.yaml");
    fs.writeFileSync(file, "learner:\n  ppoEpochs: 2\n  miniBatches: 8\n  learningRate: 1e-4\n");
    const config = await run(loadConfig({ file }));
    expect(config.algorithm).toMatchObject({ ppoEpochs: 2, miniBatches: 8 });
    expect(config.learner).not.toHaveProperty("miniBatches");
    expect(config.learner.learningRate).toBe(1e-4);
    // the same value in both places is fine; different values name both keys
    const same = await run(
      loadConfig({ overrides: { algorithm: { miniBatches: 2 }, learner: { miniBatches: 2 } } }),
    );
    expect(same.algorithm.miniBatches).toBe(2);
    expect(
      (await failure(loadConfig({ file, overrides: { algorithm: { miniBatches: 2 } } }))).message,
    ).toMatch(/learner\.miniBatches moved to algorithm\.miniBatches/);
  });

  it("the algorithm section is gsspo's Schema: its options validate, a setting the variant refuses names algorithm.<field>", async () => {
    const config = await run(
      loadConfig({
        overrides: { algorithm: { name: "grpo", units: "sequence", dropUniformGroups: false, eps: 1e-8 } },
      }),
    );
    const algorithm = await run(loadAlgorithm(config.algorithm));
    expect(algorithm.settings).toMatchObject({ variant: "grpo", units: "sequence", dualClip: 3 });
    expect(algorithm.config).toMatchObject({ dropUniformGroups: false, eps: 1e-8, miniBatches: 4 });
    expect((await failure(loadConfig({ overrides: { algorithm: { ppoEpochs: 0 } } }))).message).toMatch(
      /ppoEpochs/,
    );
    expect((await failure(loadConfig({ overrides: { algorithm: { units: "turn" } } }))).message).toMatch(
      /units/,
    );
    const infinite = await run(loadConfig({ overrides: { algorithm: { eps: Number.POSITIVE_INFINITY } } }));
    expect(await failure(loadAlgorithm(infinite.algorithm))).toMatchObject({
      _tag: "ConfigError",
      field: "algorithm.eps",
    });
  });
});
