import { type Trajectory, TrajectoryBuilder } from "@workflow-r1/core";
import { describe, expect, it } from "vitest";
import { defaultTrainConfig } from "../src/config.js";
import { compareTable, finalAccuracy, stepsToThreshold } from "../src/train/compare.js";
import { renderDashboard } from "../src/train/dashboard.js";
import { nextTasks, rewardMetrics, summarize } from "../src/train/loop.js";
import type { StepMetrics } from "../src/train/metrics-log.js";
import { Rng } from "../src/train/random.js";
import { dropUniformGroups, mismatchMetrics, usableTrajectories } from "../src/train/update.js";

const trajectory = (
  groupId: string,
  reward: number,
  options: { error?: string; sampled?: number[] } = {},
): Trajectory => {
  const b = new TrajectoryBuilder([1, 2]);
  const sampled = options.sampled ?? [-0.5, -1];
  if (sampled.length > 0)
    b.appendSampled(
      sampled.map((_, i) => 10 + i),
      sampled,
    );
  return b.build({
    reward,
    rewardParts: { em: reward > 0 ? 1 : 0 },
    groupId,
    taskId: groupId,
    turns: [],
    finishReason: options.error ? "error" : "answer",
    ...(options.error && { error: options.error }),
  });
};

describe("update helpers", () => {
  it("excludes failed episodes and episodes with nothing sampled", () => {
    const kept = usableTrajectories([
      trajectory("a", 1),
      trajectory("a", 0, { error: "PolicyError: boom" }),
      trajectory("b", 1, { sampled: [] }),
    ]);
    expect(kept).toHaveLength(1);
  });

  it("drops groups whose rewards are all equal and counts them", () => {
    const result = dropUniformGroups([
      trajectory("a", 1),
      trajectory("a", 1),
      trajectory("b", 1),
      trajectory("b", 0),
      trajectory("c", 0.5),
    ]);
    expect(result.groups).toBe(3);
    expect(result.droppedGroups).toBe(1);
    // A group of one keeps its only member (its advantage is r / (1 + eps), not zero).
    expect(result.kept.map((t) => t.groupId)).toEqual(["b", "b", "c"]);
  });

  it("measures sampler–learner mismatch on sampled tokens only", () => {
    const t = trajectory("a", 1, { sampled: [-0.5, -1] });
    const same = mismatchMetrics([t], [Float32Array.from(t.samplerLogprobs)]);
    expect(same["mismatch/abs_mean"]).toBe(0);
    expect(same["mismatch/kl"]).toBe(0);
    const shifted = Float32Array.from(t.samplerLogprobs, (v) => v - 0.1);
    const m = mismatchMetrics([t], [shifted]);
    expect(m["mismatch/abs_mean"]).toBeCloseTo(0.1, 6);
    expect(m["mismatch/kl"]).toBeCloseTo(Math.exp(-0.1) - 1 + 0.1, 6);
  });
});

describe("task order", () => {
  const tasks = Array.from({ length: 5 }, (_, i) => ({ id: `t${i}`, question: `q${i}` }));

  it("walks a per-epoch shuffle and continues exactly where a resumed run left off", () => {
    const whole = nextTasks(tasks, 8, { dataPosition: 0, epoch: 0 }, 3);
    const first = nextTasks(tasks, 3, { dataPosition: 0, epoch: 0 }, 3);
    const rest = nextTasks(tasks, 5, first, 3);
    expect([...first.tasks, ...rest.tasks].map((t) => t.id)).toEqual(whole.tasks.map((t) => t.id));
    expect(whole.epoch).toBe(1);
    expect(whole.dataPosition).toBe(3);
    // Every epoch visits every task once.
    expect(new Set(whole.tasks.slice(0, 5).map((t) => t.id)).size).toBe(5);
  });

  it("restores the RNG from its state", () => {
    const a = new Rng(9);
    a.next();
    const b = new Rng(a.getState());
    expect([a.next(), a.next()]).toEqual([b.next(), b.next()]);
  });
});

describe("metrics and summaries", () => {
  it("aggregates rewards, accuracy and reward parts", () => {
    const m = rewardMetrics([trajectory("a", 1), trajectory("a", 0)]);
    expect(m["reward/mean"]).toBe(0.5);
    expect(m["reward/std"]).toBeCloseTo(Math.SQRT1_2, 10);
    expect(m["accuracy"]).toBe(0.5);
    expect(m["reward/em"]).toBe(0.5);
  });

  it("summarizes the first and last quarter of a run", () => {
    const rows = Array.from({ length: 8 }, (_, i) => ({ step: i + 1, "reward/mean": i, accuracy: i / 10 }));
    const s = summarize(rows);
    expect(s.rewardStart).toBe(0.5);
    expect(s.rewardEnd).toBe(6.5);
  });

  it("keeps the step-0 evaluation out of the training quarters and reports held-out accuracy", () => {
    const rows = [
      { step: 0, "eval/accuracy": 0.2 },
      ...Array.from({ length: 8 }, (_, i) => ({ step: i + 1, "reward/mean": i, accuracy: i / 10 })),
    ];
    rows[8] = { ...rows[8]!, "eval/accuracy": 0.6 };
    const s = summarize(rows);
    expect(s.steps).toBe(8);
    expect(s.rewardStart).toBe(0.5);
    expect(s.accuracyStart).toBeCloseTo(0.05);
    expect(s.evalAccuracyStart).toBe(0.2);
    expect(s.evalAccuracyEnd).toBe(0.6);
  });

  it("counts RL steps only in the dashboard's subtitle (step 0 is the starting evaluation)", () => {
    const rows: StepMetrics[] = [
      { step: 0, "eval/accuracy": 0.2 },
      { step: 1, "reward/mean": 0.1, accuracy: 0.1 },
      { step: 2, "reward/mean": 0.3, accuracy: 0.2, "eval/accuracy": 0.4 },
    ];
    const html = renderDashboard(rows, { ...defaultTrainConfig, steps: 5 });
    expect(html).toContain("2/5 steps");
    expect(html).toContain("eval/accuracy");
  });

  it("tabulates an algorithm comparison", () => {
    const rows: Record<string, number>[] = [
      { step: 1, accuracy: 0.1 },
      { step: 2, accuracy: 0.6, "eval/accuracy": 0.55 },
    ];
    expect(finalAccuracy(rows)).toBe(0.55);
    expect(stepsToThreshold(rows, 0.35, 2)).toBe(2);
    expect(stepsToThreshold(rows, 0.9, 2)).toBeNull();
    // A single lucky step does not count: the trailing mean of the window must reach the threshold.
    const noisy = [0.1, 0.9, 0.1, 0.5, 0.6, 0.7].map((accuracy, i) => ({ step: i + 1, accuracy }));
    expect(stepsToThreshold([{ step: 0, "eval/accuracy": 0.9 }, ...noisy], 0.5, 3)).toBe(4);
    expect(stepsToThreshold(noisy, 0.5, 1)).toBe(2);
    const table = compareTable(
      [{ algorithm: "gsspo", finalAccuracy: [0.5, 0.7], stepsToThreshold: [3, null] }],
      0.5,
    );
    expect(table).toContain("| gsspo | 0.600 ± 0.141 | 3, — |");
  });
});
