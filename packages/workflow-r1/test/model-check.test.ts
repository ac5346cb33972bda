/**
 * A starting model the learner cannot train, or a file that is not a model, is refused at start:
 * before the policy loads it, before any rollout, and before the run folder is written.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { realModelPath } from "@workflow-r1/gguf";
import { Effect } from "effect";
import { afterAll, describe, expect, it } from "vitest";
import { checkTrainableModel } from "../src/train/model-check.js";
import { runTrain } from "../src/train/run.js";
import { smallRun } from "./fixtures/settings.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-model-check-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const failure = (modelPath: string) => Effect.runPromise(Effect.flip(checkTrainableModel(modelPath)));

describe("the starting model is checked before anything loads it", () => {
  it("SmolLM2 (llama) is trainable", async () => {
    expect(await Effect.runPromise(checkTrainableModel(realModelPath("smollm2")))).toBe("llama");
  });

  it("Gemma 3 as the policy fails at start, naming its architecture and the supported ones; no run folder is written", async () => {
    const error = await failure(realModelPath("gemma3"));
    expect(error._tag).toBe("ConfigError");
    expect(error.message).toMatch(/is a gemma3; the learner trains llama, qwen2 models/);
    const out = path.join(dir, "gemma-run");
    const rejected = await runTrain({
      overrides: { ...smallRun(out, 1), model: { ...smallRun(out, 1).model, path: realModelPath("gemma3") } },
    }).catch((e) => e);
    expect(rejected._tag).toBe("ConfigError");
    expect(rejected.field).toBe("model.path");
    expect(fs.existsSync(out)).toBe(false);
  });

  it("a missing file, a file that is not a GGUF and a file cut inside its header are refused by name", async () => {
    const missing = path.join(dir, "nope.gguf");
    expect((await failure(missing)).message).toBe(`model file not found: ${missing}`);
    const text = path.join(dir, "notes.gguf");
    fs.writeFileSync(text, "these are notes, not weights\n".repeat(100));
    expect((await failure(text)).message).toMatch(
      /cannot read .*notes\.gguf as a GGUF model: .*not a GGUF file/,
    );
    const cut = path.join(dir, "cut.gguf");
    fs.writeFileSync(cut, fs.readFileSync(realModelPath("smollm2")).subarray(0, 100_000));
    const error = await failure(cut);
    expect(error._tag).toBe("ModelLoadError");
    expect(error.message).toMatch(/cut\.gguf.*truncated file/);
  });
});
