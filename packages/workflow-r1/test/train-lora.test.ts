/**
 * `workflow-r1 train` in LoRA mode on CPU: each step's adapter goes from the learner to the policy
 * in memory (no file), the stale-weights guard checks after every step that the policy runs it,
 * and the adapter file is written with each checkpoint.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { runTrain } from "../src/train/run.js";
import { smallRun } from "./fixtures/settings.js";

describe("workflow-r1 train, LoRA mode (CPU)", () => {
  it("syncs the adapter in memory every step and writes it with each checkpoint", async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-lora-"));
    const base = smallRun(out, 2);
    const rows = await runTrain({
      overrides: {
        ...base,
        learner: { ...base.learner, mode: "lora", loraRank: 4, loraAlpha: 8, learningRate: 0.05 },
      },
    });
    expect(rows.map((r) => r["step"])).toEqual([1, 2]);
    for (const row of rows) {
      // The guard passed (the run went on) and the update moved the probe: the policy took new weights.
      expect(Number(row["guard/probe_shift"])).toBeGreaterThan(0);
      expect(Number(row["mismatch/probe_max_abs"])).toBeLessThanOrEqual(Number(row["guard/tolerance"]));
      expect(Number(row["time/export_reload"])).toBeGreaterThan(0);
    }
    // LoRA: the trainable adapter is what has gradients and AdamW moments, not the base.
    const { learnerMemory } = JSON.parse(fs.readFileSync(path.join(out, "summary.json"), "utf8"));
    expect(learnerMemory.trainable).toBeGreaterThan(0);
    expect(learnerMemory.gradients).toBe(learnerMemory.trainable);
    expect(learnerMemory.gradients).toBeLessThan(learnerMemory.weights);
    const adapters = [1, 2].map((step) =>
      path.join(out, "checkpoints", `step-00000${step}`, "policy-adapter.gguf"),
    );
    for (const file of [...adapters, path.join(out, "policy-adapter.gguf")])
      expect(fs.existsSync(file), file).toBe(true);
    // Each checkpoint holds that step's adapter, not a copy of an older one.
    expect(fs.readFileSync(adapters[0]!).includes("adapter.lora.alpha")).toBe(true);
    expect(fs.readFileSync(adapters[0]!).equals(fs.readFileSync(adapters[1]!))).toBe(false);
    expect(fs.readFileSync(path.join(out, "policy-adapter.gguf")).equals(fs.readFileSync(adapters[1]!))).toBe(
      true,
    );
  }, 400_000);
});
