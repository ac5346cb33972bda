import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ConfigError } from "@workflow-r1/core";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { cudaProblem, resolveDevices } from "../src/device.js";
import { presetFile } from "../src/presets.js";
import { failure, run } from "./fixtures/effects.js";

describe("model.gpu: one meaning for the sampler and the learner", () => {
  const cpuOnly = { ...process.env, WORKFLOW_R1_CUDA: undefined };
  it("false: both on the CPU; auto without the CUDA build: both on the CPU", async () => {
    expect(await run(resolveDevices(false, cpuOnly))).toEqual({ policy: false, learner: false });
    expect(await run(resolveDevices("auto", cpuOnly))).toEqual({ policy: false, learner: false });
  });

  it("cuda without the CUDA build is refused with the command that builds it; vulkan is refused", async () => {
    expect(await run(cudaProblem(cpuOnly))).toMatch(/WORKFLOW_R1_CUDA is not 1/);
    const cuda = await failure(resolveDevices("cuda", cpuOnly));
    expect(cuda).toBeInstanceOf(ConfigError);
    expect(cuda.message).toMatch(/build-cuda\.sh/);
    expect((await failure(resolveDevices("vulkan", cpuOnly))).message).toMatch(/no Vulkan backend/);
  });
});

describe("train --preset", () => {
  it("ships a gpu preset that validates and names CUDA", async () => {
    const config = await run(loadConfig({ file: await run(presetFile("gpu")) }));
    expect(config.model.gpu).toBe("cuda");
    expect(config.rollout.groupSize).toBe(16);
    expect(config.rollout.tasksPerStep).toBe(64);
    expect(config.model.contextSize).toBe(2048);
    expect((await failure(presetFile("nope"))).message).toMatch(/no preset "nope"; available: .*gpu/);
  });

  it("ships the authors' schedule as workflow-r1-paper, and the LoRA recipe as a second, labelled preset", async () => {
    const paper = await run(loadConfig({ file: await run(presetFile("workflow-r1-paper")) }));
    expect(paper.environment.name).toBe("workflow-r1");
    expect(paper.rollout).toMatchObject({ groupSize: 8, tasksPerStep: 512, maxTurns: 21, maxTokens: 8192 });
    expect(paper.learner).toMatchObject({
      mode: "full",
      learningRate: 1e-6,
      weightDecay: 0.01,
      beta2: 0.999,
      gradClip: 1,
    });
    expect(paper.algorithm).toMatchObject({
      name: "gsspo",
      klCoef: 0.001,
      klEstimator: "k3",
      ppoEpochs: 1,
      miniBatches: 4,
    });
    expect(paper.steps).toBe(38);
    expect(paper.environment.options["operators"]).toBeUndefined(); // the paper's seven (env-qa's default)
    expect(paper.environment.options["operatorBudget"]).toBe(20);
    const loraFile = await run(presetFile("workflow-r1-lora"));
    const lora = await run(loadConfig({ file: loraFile }));
    expect(lora.learner).toMatchObject({ mode: "lora", learningRate: 1e-5, weightDecay: 0, beta2: 0.99 });
    expect(lora.rollout).toMatchObject({ groupSize: 5, tasksPerStep: 64, maxTurns: 21, maxTokens: 8192 });
    expect(fs.readFileSync(loraFile, "utf8")).toContain("NOT the authors' schedule");
  });

  it("refuses clearly on a machine without the CUDA build, before writing a run", () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-preset-"));
    const cli = path.resolve(import.meta.dirname, "../dist/cli.js");
    const r = spawnSync(process.execPath, [cli, "train", "--preset", "gpu", "--out", path.join(out, "run")], {
      encoding: "utf8",
      env: { ...process.env, CI: "1", WORKFLOW_R1_CUDA: "" },
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/model\.gpu is "cuda" but CUDA is not usable/);
    expect(fs.existsSync(path.join(out, "run", "config.json"))).toBe(false);
    fs.rmSync(out, { recursive: true, force: true });
  });
});
