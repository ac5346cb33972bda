/**
 * The same loop trains an environment unrelated to QA: `--env arith` resolves to
 * @workflow-r1/env-arith (made with the environment generator), warm-starts on its
 * demonstrations and runs GSsPO steps on it.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { runTrain } from "../src/train/run.js";

describe("second environment (env-arith) through the training loop", () => {
  it("warm-starts and trains on multi-turn arithmetic", async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-arith-"));
    const rows = await runTrain({
      overrides: {
        out,
        steps: 2,
        evalTasks: 0,
        environment: { name: "arith", options: { steps: 1 } },
        model: {
          tiny: { dim: 32, layers: 1, heads: 2, kvHeads: 1, ffn: 64, context: 512 },
          contextSize: 512,
        },
        warmStart: { steps: 30, batchSize: 8, learningRate: 0.01 },
        rollout: {
          tasksPerStep: 3,
          groupSize: 6,
          maxConcurrentEpisodes: 18,
          maxTurns: 3,
          maxTokens: 72,
          maxTokensPerTurn: 24,
        },
        learner: { learningRate: 0.003, threads: 1 },
        // KL to the starting model (the paper's k3, β = 0.001), through a frozen reference learner.
        algorithm: { klCoef: 0.001, klEstimator: "k3" },
      },
    });
    expect(rows.map((r) => r["step"])).toEqual([1, 2]);
    for (const row of rows) {
      expect(Number(row["reward/accuracy"])).toBeGreaterThanOrEqual(0);
      expect(Number(row["mismatch/probe_max_abs"])).toBeLessThan(5e-3);
      expect(Number(row["episodes/failed"])).toBe(0);
    }
    // Rewards differ within groups (progress and format parts), so the policy really updates.
    expect(
      rows.some((r) => Number(r["update/trajectories"]) > 0 && Number.isFinite(Number(r["grad_norm"]))),
    ).toBe(true);
    const updated = rows.filter((r) => Number(r["update/trajectories"]) > 0);
    for (const r of updated) expect(Number.isFinite(Number(r["kl_ref"]))).toBe(true);
    // The environment is the arithmetic one: its reward parts, not QA's.
    expect(Object.keys(rows[0]!)).toContain("reward/progress");
    expect(Object.keys(rows[0]!)).not.toContain("reward/em");
  }, 400_000);
});
