/**
 * `workflow-r1 train` on a real pretrained model (SmolLM2-135M-Instruct Q4_1, fetched by
 * tools/fetch-models.sh), on CPU with small budgets:
 * - the synthetic environment, full fine-tuning from the quantized file (F32 master weights), the
 *   KL term against a frozen reference, one RL step;
 * - a one-turn environment whose reward varies within every group (so the step really updates the
 *   model): the policy must take the exported weights (the stale-weights guard);
 * - the Workflow-R1 QA environment with its seven closed-book operators run by a local executor
 *   (its own SmolLM2 instance), LoRA over the Q4_1 base with the KL reference being the base
 *   without the adapter, one RL step.
 * Each must reach the end with the stale-weights guard passing.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { realModelPath } from "@workflow-r1/gguf";
import { describe, expect, it } from "vitest";
import { runTrain } from "../src/train/run.js";
import { vowelEnv } from "./fixtures/settings.js";

const DATA = path.resolve(import.meta.dirname, "../../../../shared/data/qa");

const shared = (out: string) => ({
  out,
  steps: 1,
  evalTasks: 0,
  checkpointEvery: 1,
  model: { path: realModelPath("smollm2"), contextSize: 1024, threads: 2, kvCacheType: "f32" },
  // Groups whose episodes all score alike stay in the update (advantage 0), so the learner scores
  // every trajectory and the step reports the sampler–learner mismatch and the KL whatever the
  // untrained model writes.
  algorithm: { klCoef: 0.01, miniBatches: 1, dropUniformGroups: false },
  learner: { threads: 2, microBatchTokens: 2048, learningRate: 1e-5 },
});

const readJson = (file: string) => JSON.parse(fs.readFileSync(file, "utf8"));

describe("workflow-r1 train on SmolLM2-135M-Instruct (real model, CPU)", () => {
  it("synthetic environment, full fine-tuning from Q4_1 with a frozen KL reference: one RL step on the F32 export", async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-real-synthetic-"));
    try {
      const base = shared(out);
      const rows = await runTrain({
        overrides: {
          ...base,
          environment: { name: "synthetic", options: { prompt: "full", trainTasks: 8, evalTasks: 2 } },
          warmStart: { steps: 0 },
          rollout: { tasksPerStep: 2, groupSize: 2, maxConcurrentEpisodes: 4, maxTurns: 2, maxTokens: 64 },
          learner: { ...base.learner, mode: "full" },
        },
      });
      expect(rows.map((r) => r["step"])).toEqual([1]);
      const step = rows[0]!;
      // Full fine-tuning: before the first rollout the policy reloads the learner's F32 export, so
      // sampler and learner run the same F32 weights (the quantized file's gap is gone).
      expect(Number(step["mismatch/abs_mean"])).toBeLessThan(1e-3);
      // The reference is a frozen learner on the same F32 weights: KL(policy ‖ reference) is 0 up
      // to rounding at the first update.
      expect(Number(step["kl_ref"])).toBeGreaterThanOrEqual(0);
      expect(Number(step["kl_ref"])).toBeLessThan(1e-5);
      // The guard ran after the step's export and reload.
      expect(Number(step["mismatch/probe_max_abs"])).toBeLessThanOrEqual(Number(step["guard/tolerance"]));
      const summary = readJson(path.join(out, "summary.json"));
      // Full fine-tuning: a gradient for every (dequantized) weight.
      expect(summary.learnerMemory.gradients).toBe(summary.learnerMemory.weights);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  }, 900_000);

  it("a real RL update of the real model (a reward that varies within every group): the policy takes the exported weights and the guard passes", async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-real-vowels-"));
    try {
      const base = shared(out);
      const rows = await runTrain({
        overrides: {
          ...base,
          evalTasks: 0,
          algorithm: { klCoef: 0, miniBatches: 1 },
          environment: { name: vowelEnv, options: {} },
          warmStart: { steps: 0 },
          rollout: {
            tasksPerStep: 2,
            groupSize: 4,
            maxConcurrentEpisodes: 8,
            maxTurns: 1,
            maxTokens: 32,
            maxTokensPerTurn: 16,
          },
          learner: { ...base.learner, mode: "full", learningRate: 1e-5 },
        },
      });
      expect(rows.map((r) => r["step"])).toEqual([1]);
      const step = rows[0]!;
      expect(Number(step["reward/std"])).toBeGreaterThan(0);
      expect(Number(step["guard/probe_shift"])).toBeGreaterThan(0);
      expect(Number(step["guard/policy_move"])).toBeGreaterThan(0);
      expect(Number(step["mismatch/probe_max_abs"])).toBeLessThanOrEqual(Number(step["guard/tolerance"]));
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  }, 900_000);

  it.skipIf(!fs.existsSync(DATA))(
    "Workflow-R1 QA environment with a local SmolLM2 executor, LoRA over the Q4_1 base, KL to the base: one RL step; the quantized gap is the mismatch",
    async () => {
      const out = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-real-qa-"));
      try {
        const base = shared(out);
        const rows = await runTrain({
          overrides: {
            ...base,
            environment: {
              name: "workflow-r1",
              options: {
                dataDir: DATA,
                trainTasks: 4,
                evalTasks: 2,
                executor: { kind: "local", model: realModelPath("smollm2"), maxTokens: 32, threads: 1 },
              },
            },
            warmStart: { steps: 0 },
            rollout: { tasksPerStep: 2, groupSize: 2, maxConcurrentEpisodes: 4, maxTurns: 2, maxTokens: 96 },
            learner: { ...base.learner, mode: "lora", loraRank: 4, loraAlpha: 8, learningRate: 1e-3 },
          },
        });
        expect(rows.map((r) => r["step"])).toEqual([1]);
        const step = rows[0]!;
        // LoRA keeps the Q4_1 base on both sides, and both round activations for the quantized
        // products in their own order: the mismatch metric reports that gap (the learner's
        // agreement test measures ~0.07 per token on average), not zero and not another model's.
        expect(Number(step["mismatch/abs_mean"])).toBeGreaterThan(1e-3);
        expect(Number(step["mismatch/abs_mean"])).toBeLessThan(0.2);
        expect(Number(step["mismatch/probe_max_abs"])).toBeLessThanOrEqual(Number(step["guard/tolerance"]));
        expect(fs.existsSync(path.join(out, "policy-adapter.gguf"))).toBe(true);
        expect(Number(step["kl_ref"])).toBeGreaterThanOrEqual(0);
        // LoRA: only the adapter has gradients; the reference added no second model.
        const summary = readJson(path.join(out, "summary.json"));
        expect(summary.learnerMemory.gradients).toBeLessThan(summary.learnerMemory.weights / 10);
      } finally {
        fs.rmSync(out, { recursive: true, force: true });
      }
    },
    900_000,
  );
});
