import { describe, expect, it } from "vitest";
import { defaultTrainConfig } from "../src/config.js";
import { movingMean, renderDashboard } from "../src/train/dashboard.js";
import type { StepMetrics } from "../src/train/metrics-log.js";
import { createProgress, estimateRemaining, formatDuration } from "../src/train/progress.js";

/** The JSON the page embeds for its charts. */
const pageData = (html: string) =>
  JSON.parse(/<script type="application\/json" id="chart-page-data">(.*?)<\/script>/s.exec(html)![1]!) as {
    sections: Array<{
      heading: string;
      table?: { rows: Array<[string, string]> };
      chart?: {
        labels: number[];
        series: Array<{ name: string; values: Array<number | null>; points?: boolean; faint?: boolean }>;
      };
    }>;
  };

describe("training dashboard", () => {
  const rows: StepMetrics[] = [
    { step: 0, "eval/accuracy": 0.2 },
    ...Array.from({ length: 8 }, (_, i) => ({
      step: i + 1,
      "reward/mean": i % 2 === 0 ? 0 : 1,
      accuracy: 0.1 * i,
      "time/rollout": 1,
      "time/learner": 3,
      ...(i === 7 && { "eval/accuracy": 0.6 }),
    })),
  ];
  const warm: StepMetrics[] = [
    { step: 25, "warm_start/nll": 2.5 },
    { step: 50, "warm_start/nll": 0.5 },
  ];
  const page = pageData(renderDashboard(rows, { ...defaultTrainConfig, steps: 10 }, warm));

  it("opens with a summary block of the run's headline numbers", () => {
    expect(page.sections[0]!.heading).toBe("Summary");
    const summary = Object.fromEntries(page.sections[0]!.table!.rows);
    expect(summary["RL steps"]).toBe("8 / 10");
    expect(summary["held-out accuracy (first → last evaluation)"]).toBe("0.200 (step 0) → 0.600 (step 8)");
    expect(summary["warm start"]).toContain("NLL/token 2.500 → 0.500");
    expect(summary["time in RL steps"]).toContain("rollout 25%, learner 75%");
  });

  it("shows the warm-start loss in its own panel", () => {
    const panel = page.sections.find((s) => s.heading.startsWith("Warm start"))!;
    expect(panel.chart!.labels).toEqual([25, 50]);
    expect(panel.chart!.series[0]!.values).toEqual([2.5, 0.5]);
  });

  it("draws per-step reward raw and smoothed, and held-out evaluations as points", () => {
    const reward = page.sections.find((s) => s.heading === "Reward")!.chart!;
    const raw = reward.series.find((s) => s.name === "reward/mean")!;
    const smooth = reward.series.find((s) => s.name.startsWith("reward/mean (moving mean"))!;
    expect(raw.faint).toBe(true);
    expect(smooth.values.slice(1, 6)).toEqual([0, 0.5, 1 / 3, 0.5, 0.4]);
    const accuracy = page.sections.find((s) => s.heading.startsWith("Accuracy"))!.chart!;
    const heldOut = accuracy.series.find((s) => s.name === "eval/accuracy (held-out)")!;
    expect(heldOut.points).toBe(true);
    expect(heldOut.values.filter((v) => v !== null)).toEqual([0.2, 0.6]);
  });

  it("smooths with a trailing moving mean that skips gaps", () => {
    expect(movingMean([1, 3, null, 5, 7], 2)).toEqual([1, 2, null, 5, 6]);
  });
});

describe("progress", () => {
  it("formats durations and estimates the time left from the steps done since it started", () => {
    expect(formatDuration(5)).toBe("5s");
    expect(formatDuration(95)).toBe("1m35s");
    expect(formatDuration(4000)).toBe("1h06m");
    expect(formatDuration(Number.NaN)).toBe("?");
    // Resumed at step 10 of 60; 5 steps in 10 s → 45 steps left at 2 s each.
    expect(estimateRemaining(10, 15, 60, 10)).toBe(90);
    expect(Number.isNaN(estimateRemaining(10, 10, 60, 3))).toBe(true);
  });

  it("prints plain lines with an ETA when not on a terminal", () => {
    const lines: string[] = [];
    const progress = createProgress(4, "warm-start", { interactive: false, write: (t) => lines.push(t) });
    progress.update(1, "NLL 1.0");
    progress.update(4, "NLL 0.5");
    expect(lines[0]).toMatch(/^\[warm-start\] step 1\/4 NLL 1\.0 \(eta \d+s\)\n$/);
    expect(lines[1]).toBe("[warm-start] step 4/4 NLL 0.5\n");
  });
});
