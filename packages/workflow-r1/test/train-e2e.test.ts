/**
 * The real loop on CPU: llama.cpp sampling, ggml learning, GGUF export and reload, metrics,
 * checkpoints — and a learning signal: after one update, the policy raised the log-likelihood of
 * trajectories with positive advantage relative to those with negative advantage.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { groupAdvantages } from "@workflow-r1/gsspo";
import { createLlamaCppPolicy } from "@workflow-r1/policy";
import { readTrajectoryLogAll } from "@workflow-r1/rollout";
import { Effect } from "effect";
import { describe, expect, it } from "vitest";
import { runTrain } from "../src/train/run.js";
import { smallRun } from "./fixtures/settings.js";

const meanSampledLogp = async (
  modelPath: string,
  trajectories: ReadonlyArray<{ tokens: Int32Array; promptLength: number; mask: Uint8Array }>,
) => {
  const policy = await createLlamaCppPolicy({
    modelPath,
    gpu: false,
    sequences: 1,
    contextSize: 256,
    threads: 2,
    kvCacheType: "F32",
  });
  try {
    const out: number[] = [];
    for (const t of trajectories) {
      const logp = await Effect.runPromise(policy.score(t.tokens, t.promptLength));
      let sum = 0;
      let n = 0;
      for (let i = 0; i < logp.length; i++)
        if (t.mask[t.promptLength + i] === 1) {
          sum += logp[i]!;
          n++;
        }
      out.push(sum / n);
    }
    return out;
  } finally {
    await policy.dispose();
  }
};

describe("workflow-r1 train (end to end, CPU)", () => {
  it("runs the loop and moves the policy toward rewarded trajectories", async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-e2e-"));
    const rows = await runTrain({ overrides: smallRun(out, 2) });

    expect(rows.map((r) => r["step"])).toEqual([1, 2]);
    for (const key of [
      "reward/mean",
      "reward/std",
      "accuracy",
      "clip_fraction",
      "approx_kl",
      "grad_norm",
      "mismatch/kl",
      "time/rollout",
      "time/learner",
      "time/sync",
      "time/learner_forward",
      "time/learner_backward",
      "time/optimizer",
      "time/algorithm",
      "time/export_reload",
      "time/probe",
      "mismatch/abs_max",
      "guard/tolerance",
      "guard/probe_shift",
    ])
      expect(Number.isFinite(Number(rows[0]![key])), key).toBe(true);
    // The learner's split adds up to no more than the learner's wall time.
    const split = [
      "time/learner_forward",
      "time/learner_backward",
      "time/optimizer",
      "time/algorithm",
    ].reduce((s, k) => s + Number(rows[0]![k]), 0);
    expect(Number(rows[0]!["time/learner_backward"])).toBeGreaterThan(0);
    expect(split).toBeLessThanOrEqual(Number(rows[0]!["time/learner"]) + 1e-3);
    expect(Number(rows[0]!["mismatch/abs_max"])).toBeGreaterThanOrEqual(
      Number(rows[0]!["mismatch/abs_mean"]),
    );
    // The sampler (llama.cpp, F32 cache) and the learner (ggml) agree on the sampled tokens.
    expect(Number(rows[0]!["mismatch/abs_mean"])).toBeLessThan(1e-3);
    expect(Number(rows[0]!["update/trajectories"])).toBeGreaterThan(0);
    for (const file of [
      "config.json",
      "metrics.jsonl",
      "trajectories.msgpack",
      "dashboard.html",
      "summary.json",
      "checkpoints/latest",
    ])
      expect(fs.existsSync(path.join(out, file)), file).toBe(true);
    expect(fs.readFileSync(path.join(out, "metrics.jsonl"), "utf8").trim().split("\n")).toHaveLength(2);
    // The learner's memory, as the learner reported it at the end: full fine-tuning keeps a
    // gradient per weight and two AdamW moments; the work buffer fits the largest micro-batch.
    const { learnerMemory } = JSON.parse(fs.readFileSync(path.join(out, "summary.json"), "utf8"));
    expect(learnerMemory.weights).toBeGreaterThan(0);
    expect(learnerMemory.gradients).toBe(learnerMemory.weights);
    expect(learnerMemory.optimizer).toBe(2 * learnerMemory.weights);
    expect(learnerMemory.compute).toBeGreaterThan(0);
    expect(learnerMemory.computeTokens).toBeGreaterThan(0);
    expect(learnerMemory.computeTokens).toBeLessThanOrEqual(4096);

    // Learning signal: step 1's trajectories, scored by llama.cpp before and after step 1's update.
    const { trajectories } = await readTrajectoryLogAll(path.join(out, "trajectories.msgpack"));
    const step1 = trajectories.filter((t) => t.groupId.startsWith("s1-"));
    expect(step1.length).toBe(18);
    const advantages = groupAdvantages(
      step1.map((t) => t.reward),
      step1.map((t) => t.groupId),
    );
    const before = await meanSampledLogp(path.join(out, "model-init.gguf"), step1);
    const after = await meanSampledLogp(path.join(out, "checkpoints", "step-000001", "policy.gguf"), step1);
    const signal = step1.reduce((s, _t, i) => s + advantages[i]! * (after[i]! - before[i]!), 0);
    expect(signal).toBeGreaterThan(0);
  }, 400_000);
});
