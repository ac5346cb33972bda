/**
 * Executor outages in the training loop: operator failures are counted in metrics.jsonl, and an
 * executor that fails `maxConsecutiveFailures` calls in a row stops the run before any update.
 * The environment fixture makes one executor call per episode through env-qa's real monitor.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { runTrain } from "../src/train/run.js";
import { smallRun } from "./fixtures/settings.js";

const executorEnv = path.resolve(import.meta.dirname, "fixtures/executor-env.mjs");

const config = (out: string, steps: number, options: Record<string, unknown>) => ({
  ...smallRun(out, steps),
  environment: { name: executorEnv, options },
});

describe("executor failures during training", () => {
  it("counts executor calls and failures per step", async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-executor-"));
    try {
      // Every second call fails: never 8 in a row, so the run completes.
      const rows = await runTrain({ overrides: config(out, 2, { failEvery: 2 }) });
      expect(rows.map((r) => r["step"])).toEqual([1, 2]);
      for (const row of rows) {
        // 3 tasks × 6 episodes, one call each.
        expect(row["executor/calls"]).toBe(18);
        expect(row["executor/failures"]).toBe(9);
        expect(row["executor/failures_per_episode"]).toBe(0.5);
        expect(row["reward/executorFailures"]).toBeUndefined();
      }
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  }, 120_000);

  it("stops the run when the executor fails maxConsecutiveFailures calls in a row", async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-executor-"));
    try {
      const run = runTrain({ overrides: config(out, 3, { failEvery: 1, maxConsecutiveFailures: 5 }) });
      await expect(run).rejects.toMatchObject({
        _tag: "ExecutorUnavailableError",
        message: expect.stringMatching(/http:\/\/fake-executor\/v1 is unavailable: 5 calls failed in a row/),
      });
      // Stopped before the first update: no step was logged or checkpointed.
      const metrics = path.join(out, "metrics.jsonl");
      expect(fs.existsSync(metrics) ? fs.readFileSync(metrics, "utf8").trim() : "").toBe("");
      expect(fs.existsSync(path.join(out, "checkpoints", "step-000001"))).toBe(false);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  }, 120_000);
});
