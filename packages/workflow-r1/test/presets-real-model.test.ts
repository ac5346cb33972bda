/**
 * The paper and LoRA presets on this machine (no GPU, no network, no executor server), with the
 * real SmolLM2 file as the policy: each stops only where it needs a GPU, the network or a server,
 * with a message that says so — never at the learner (full fine-tuning of a Q4_1 base and the
 * KL reference are what the presets ask for). `real-model-train.test.ts` runs those learner
 * settings to the end on the same file.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { realModelPath } from "@workflow-r1/gguf";
import { afterAll, describe, expect, it } from "vitest";
import { presetFile } from "../src/presets.js";
import { runTrain } from "../src/train/run.js";
import { run } from "./fixtures/effects.js";

const DATA = path.resolve(import.meta.dirname, "../../../../shared/data/qa");
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-presets-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const failure = async (preset: string, overrides: Record<string, unknown>) =>
  runTrain({
    file: await run(presetFile(preset)),
    overrides: { out: path.join(dir, preset), ...overrides },
  }).then(
    () => undefined,
    (e) => e as { _tag: string; message: string },
  );

const gpuUsable = process.env.WORKFLOW_R1_CUDA === "1";

describe.each(["workflow-r1-paper", "workflow-r1-lora"])(
  "--preset %s on a CPU machine with SmolLM2",
  (preset) => {
    it.skipIf(gpuUsable)("as shipped: stops at start because it needs a CUDA GPU, and says so", async () => {
      const error = await failure(preset, { model: { path: realModelPath("smollm2") } });
      expect(error?._tag).toBe("ConfigError");
      expect(error?.message).toMatch(/model\.gpu is "cuda" but CUDA is not usable/);
    });

    it("on the CPU with its hf: stand-in policy: stops because resolving the URI needs the network", async () => {
      const error = await failure(preset, { model: { gpu: false } });
      expect(error?._tag).toBe("ModelLoadError");
      expect(error?.message).toMatch(
        /cannot resolve hf:Qwen\/Qwen2\.5-3B-Instruct-GGUF:f16 .*need network access/,
      );
    });

    it.skipIf(!fs.existsSync(DATA))(
      "on the CPU with SmolLM2 and the data: stops only because no executor server answers, and says so",
      async () => {
        const error = await failure(preset, {
          model: { path: realModelPath("smollm2"), gpu: false, threads: 1 },
          environment: {
            options: {
              dataDir: DATA,
              trainTasks: 4,
              evalTasks: 2,
              executor: {
                baseUrl: "http://127.0.0.1:9/v1",
                model: "executor",
                maxRetries: 0,
                timeoutMs: 2000,
              },
            },
          },
          learner: { threads: 1 },
        });
        expect(error?._tag).toBe("EnvironmentError");
        expect(error?.message).toMatch(/executor/);
        expect(error?.message).toMatch(/127\.0\.0\.1:9/);
      },
      120_000,
    );
  },
);
