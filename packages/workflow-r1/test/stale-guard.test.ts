/**
 * The stale-weights guard: the decision on readings (unit), and on real llama.cpp + ggml weights:
 * a reload of the new weights passes, a reload that kept the previous weights stops the run.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PolicyError } from "@workflow-r1/core";
import { createTinyLlama, realModelPath } from "@workflow-r1/gguf";
import { createGgmlLearner } from "@workflow-r1/learner";
import { createLlamaCppPolicy } from "@workflow-r1/policy";
import { Effect } from "effect";
import { describe, expect, it } from "vitest";
import { runTrain } from "../src/train/run.js";
import { calibrateGuard, checkReload, isFresh, learnerProbe } from "../src/train/stale-guard.js";
import { smallRun } from "./fixtures/settings.js";

describe("isFresh", () => {
  it("accepts rounding within the tolerance, and a policy much closer to the new weights than to the previous", () => {
    expect(isFresh({ toNew: 1e-5, toPrevious: 0.3, shift: 0.3, policyMove: 0.3, tolerance: 1e-4 })).toBe(
      true,
    );
    // CUDA-like rounding above the start-up estimate, but clearly on the new side.
    expect(isFresh({ toNew: 2e-2, toPrevious: 0.4, shift: 0.4, policyMove: 0.4, tolerance: 5e-3 })).toBe(
      true,
    );
    // An update too small to tell apart: within tolerance either way.
    expect(isFresh({ toNew: 5e-5, toPrevious: 6e-5, shift: 8e-5, policyMove: 8e-5, tolerance: 1e-4 })).toBe(
      true,
    );
    // No update at all: the policy need not move.
    expect(isFresh({ toNew: 1e-5, toPrevious: 1e-5, shift: 0, policyMove: 0, tolerance: 1e-4 })).toBe(true);
  });

  it("refuses a policy that sits on the previous weights", () => {
    expect(isFresh({ toNew: 0.3, toPrevious: 1e-5, shift: 0.3, policyMove: 0, tolerance: 1e-4 })).toBe(false);
    expect(isFresh({ toNew: 2e-2, toPrevious: 3e-2, shift: 4e-2, policyMove: 0, tolerance: 5e-3 })).toBe(
      false,
    );
    // A quantized base: the start-up tolerance is as large as the update, yet a policy whose
    // scores did not move at all while the learner's did is stale.
    expect(isFresh({ toNew: 0.45, toPrevious: 0.44, shift: 0.05, policyMove: 0, tolerance: 1.9 })).toBe(
      false,
    );
    expect(isFresh({ toNew: 0.45, toPrevious: 0.44, shift: 0.05, policyMove: 0.3, tolerance: 1.9 })).toBe(
      true,
    );
  });
});

describe("stale-weights guard on llama.cpp and ggml", () => {
  it("passes a real reload and stops on a reload that kept the previous weights", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-guard-"));
    const model = await createTinyLlama({
      path: path.join(dir, "init.gguf"),
      vocab: 300,
      dim: 64,
      layers: 2,
      heads: 4,
      kvHeads: 2,
      ffn: 128,
      seed: 5,
    });
    const learner = createGgmlLearner({
      modelPath: model.path,
      threads: 1,
      optimizer: { learningRate: 1e-2 },
    });
    const policy = await createLlamaCppPolicy({
      modelPath: model.path,
      gpu: false,
      sequences: 1,
      contextSize: 128,
      threads: 1,
      kvCacheType: "F32",
    });
    const run = <A, E>(e: Effect.Effect<A, E>) => Effect.runPromise(e);
    try {
      const probe = Int32Array.from({ length: 40 }, (_, i) => 1 + ((i * 37) % 290));
      const guard = await run(calibrateGuard(policy, learner, probe));
      expect(guard.tolerance).toBeLessThan(1e-3);
      // An update that moves the probe: maximum likelihood on it.
      const train = async () => {
        const seq = { tokens: probe, mask: Uint8Array.from(probe, (_, i) => (i === 0 ? 0 : 1)) };
        for (let i = 0; i < 3; i++) {
          await run(learner.backward([seq], [Float32Array.from(probe, () => -1)]));
          await run(learner.step());
        }
      };
      let previous = await run(learnerProbe(learner, probe));
      await train();
      await run(learner.save(path.join(dir, "step1.gguf"), { format: "gguf" }));
      await run(policy.reload({ kind: "gguf", path: path.join(dir, "step1.gguf") }));
      const fresh = await run(
        checkReload(policy, learner, probe, previous, guard.tolerance, guard.policyScores),
      );
      expect(fresh.shift).toBeGreaterThan(100 * guard.tolerance);
      expect(fresh.toNew).toBeLessThanOrEqual(guard.tolerance);

      // Stale: the learner moves on, the policy reloads the old file.
      previous = await run(learnerProbe(learner, probe));
      const policyBefore = fresh.policyScores;
      await train();
      await run(learner.save(path.join(dir, "step2.gguf"), { format: "gguf" }));
      await run(policy.reload({ kind: "gguf", path: path.join(dir, "step1.gguf") }));
      const error = await run(
        Effect.flip(checkReload(policy, learner, probe, previous, guard.tolerance, policyBefore)),
      );
      expect(error).toBeInstanceOf(PolicyError);
      expect(error.message).toMatch(/not running the weights being trained/);
    } finally {
      await policy.dispose();
      await learner.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("stale-weights guard on the real SmolLM2 with LoRA over its Q4_1 base", () => {
  it("passes a real update and stops a policy that kept the previous adapter, though the quantized base's rounding is as large as the update", async () => {
    const modelPath = realModelPath("smollm2");
    const learner = createGgmlLearner({
      modelPath,
      threads: 2,
      lora: { rank: 4, alpha: 8 },
      optimizer: { learningRate: 2e-6 },
    });
    const policy = await createLlamaCppPolicy({
      modelPath,
      gpu: false,
      sequences: 1,
      contextSize: 256,
      threads: 2,
      kvCacheType: "F32",
    });
    const run = <A, E>(e: Effect.Effect<A, E>) => Effect.runPromise(e);
    try {
      const probe = policy.renderChat(
        [
          {
            role: "system",
            content: "Answer in several steps, then give the answer inside <answer></answer>.",
          },
          { role: "user", content: "Which river flows through the city where the Eiffel Tower stands?" },
        ],
        { addGenerationPrompt: true },
      );
      const guard = await run(calibrateGuard(policy, learner, probe));
      // The quantized products round differently on the two sides: a tolerance far above F32's.
      expect(guard.tolerance).toBeGreaterThan(1e-2);
      const train = async () => {
        const seq = { tokens: probe, mask: Uint8Array.from(probe, (_, i) => (i === 0 ? 0 : 1)) };
        const coefficients = [Float32Array.from(probe, () => -1 / probe.length)];
        await run(learner.backward([seq], coefficients));
        await run(learner.step());
      };
      let previous = await run(learnerProbe(learner, probe));
      await train();
      const first = await run(learner.exportAdapter());
      await run(policy.reload({ kind: "lora-bytes", bytes: first }));
      const fresh = await run(
        checkReload(policy, learner, probe, previous, guard.tolerance, guard.policyScores),
      );
      expect(fresh.shift).toBeGreaterThan(0);
      expect(fresh.policyMove).toBeGreaterThan(0);
      // An update smaller than the quantized rounding (the regime the tolerance cannot judge):
      // measured shift 0.30 against a tolerance of 0.86.
      expect(fresh.shift).toBeLessThan(guard.tolerance);

      // Stale: the learner takes another step, the policy gets the first adapter again.
      previous = await run(learnerProbe(learner, probe));
      await train();
      await run(policy.reload({ kind: "lora-bytes", bytes: first }));
      const error = await run(
        Effect.flip(checkReload(policy, learner, probe, previous, guard.tolerance, fresh.policyScores)),
      );
      expect(error).toBeInstanceOf(PolicyError);
      expect(error.message).toMatch(/not running the weights being trained/);
    } finally {
      await policy.dispose();
      await learner.dispose();
    }
  }, 300_000);
});

describe("workflow-r1 train with a reload that keeps the old weights", () => {
  it("stops at the first RL step with the guard's error", async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-stale-run-"));
    let reloads = 0;
    const run = runTrain({
      overrides: smallRun(out, 3),
      // The first reload (after the warm start) is real; later ones silently keep the old weights.
      wrapPolicy: (p) => ({ ...p, reload: (w) => (reloads++ === 0 ? p.reload(w) : Effect.void) }),
    });
    await expect(run).rejects.toThrow(/not running the weights being trained/);
    expect(reloads).toBe(2);
    fs.rmSync(out, { recursive: true, force: true });
  });
});
