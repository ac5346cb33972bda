/**
 * `dashboard.html`: the run's curves as one self-contained page, rendered with the same chart
 * page builder as the evaluation reports (Chart.js inlined, opens offline). A summary table comes
 * first; per-step reward and accuracy are shown raw (faint) and smoothed; held-out evaluations
 * are marked points; the warm start's demonstration NLL has its own panel.
 */
import { type ChartSeries, type PageSection, renderChartPage } from "@workflow-r1/charts";
import type { TrainConfig } from "../config.js";
import { writeFileAtomic } from "./atomic.js";
import { type StepMetrics, trainingSteps } from "./metrics-log.js";

const panels: ReadonlyArray<{ heading: string; keys: ReadonlyArray<string>; description?: string }> = [
  {
    heading: "Reward",
    keys: ["reward/mean", "eval/reward/mean"],
    description:
      "Mean episode reward (format + answer) per step, raw (faint) and smoothed (moving mean over 5 steps); eval/ points: held-out tasks.",
  },
  {
    heading: "Accuracy (exact match)",
    keys: ["accuracy", "eval/accuracy"],
    description:
      "Training episodes per step (raw and smoothed); eval/ points: held-out tasks, one sample each.",
  },
  { heading: "Clipping", keys: ["clip_fraction", "unit_clip_fraction"] },
  {
    heading: "KL",
    keys: ["approx_kl", "mismatch/kl"],
    description: "approx_kl: old vs new policy; mismatch/kl: sampler (llama.cpp) vs learner (ggml).",
  },
  {
    heading: "Sampler–learner mismatch",
    keys: ["mismatch/abs_mean", "mismatch/abs_max", "mismatch/probe_max_abs", "guard/tolerance"],
    description:
      "|log p_sampler − log p_learner| over sampled tokens (mean, max) and on the probe after each reload, against the stale-weights guard's tolerance (measured at start-up).",
  },
  { heading: "Gradient norm", keys: ["grad_norm"] },
  { heading: "Entropy", keys: ["entropy"] },
  { heading: "Time per step (s)", keys: ["time/rollout", "time/learner", "time/sync", "time/evaluation"] },
  {
    heading: "Learner and sync time per step (s)",
    keys: [
      "time/learner_forward",
      "time/learner_backward",
      "time/optimizer",
      "time/algorithm",
      "time/export_reload",
      "time/probe",
    ],
    description: "time/learner split by kind; time/sync = export + reload + the stale-weights probe.",
  },
  {
    heading: "Throughput (tokens/s)",
    keys: ["throughput/sample_tokens_per_s", "throughput/learn_tokens_per_s"],
  },
];

/** Keys drawn raw and smoothed. */
const SMOOTHED = new Set(["reward/mean", "accuracy"]);
const SMOOTHING_WINDOW = 5;

/** Trailing moving mean over `window` values, skipping nulls (null where no value is in reach). */
export const movingMean = (values: ReadonlyArray<number | null>, window: number): Array<number | null> =>
  values.map((_, i) => {
    const seen = values.slice(Math.max(0, i - window + 1), i + 1).filter((v): v is number => v !== null);
    return values[i] === null || seen.length === 0 ? null : seen.reduce((a, b) => a + b, 0) / seen.length;
  });

const seriesFor = (rows: ReadonlyArray<StepMetrics>, key: string): ChartSeries[] => {
  const values = rows.map((r) => (r[key] === undefined ? null : Number(r[key])));
  if (key.startsWith("eval/")) return [{ name: `${key} (held-out)`, values, points: true }];
  if (!SMOOTHED.has(key)) return [{ name: key, values }];
  return [
    { name: key, values, faint: true },
    { name: `${key} (moving mean of ${SMOOTHING_WINDOW})`, values: movingMean(values, SMOOTHING_WINDOW) },
  ];
};

const fmt = (value: number | undefined, digits = 3) =>
  value === undefined || !Number.isFinite(value) ? "—" : value.toFixed(digits);

/** The summary table: what ran, how far, and the headline numbers. */
const summarySection = (
  rows: ReadonlyArray<StepMetrics>,
  config: TrainConfig,
  warmStart: ReadonlyArray<StepMetrics>,
): PageSection => {
  const training = trainingSteps(rows);
  const quarter = Math.max(1, Math.floor(training.length / 4));
  const avg = (xs: ReadonlyArray<StepMetrics>, key: string) =>
    xs.length === 0 ? undefined : xs.reduce((s, r) => s + Number(r[key] ?? 0), 0) / xs.length;
  const evaluated = rows.filter((r) => r["eval/accuracy"] !== undefined);
  const seconds = training.reduce(
    (s, r) =>
      s +
      ["time/rollout", "time/learner", "time/sync", "time/evaluation"].reduce(
        (t, k) => t + Number(r[k] ?? 0),
        0,
      ),
    0,
  );
  const share = (key: string) =>
    seconds > 0
      ? `${((100 * training.reduce((s, r) => s + Number(r[key] ?? 0), 0)) / seconds).toFixed(0)}%`
      : "—";
  const nll = warmStart.map((r) => Number(r["warm_start/nll"]));
  const table: Array<[string, string | number]> = [
    ["algorithm", config.algorithm.name],
    ["environment", config.environment.name],
    ["model", config.model.path || "tiny model created by the run"],
    ["RL steps", `${training.length} / ${config.steps}`],
    [
      "warm start",
      config.warmStart.steps === 0
        ? "none"
        : `${config.warmStart.steps} steps, NLL/token ${fmt(nll[0])} → ${fmt(nll[nll.length - 1])}`,
    ],
    [
      "reward (first → last quarter)",
      `${fmt(avg(training.slice(0, quarter), "reward/mean"))} → ${fmt(avg(training.slice(-quarter), "reward/mean"))}`,
    ],
    [
      "held-out accuracy (first → last evaluation)",
      evaluated.length === 0
        ? "—"
        : `${fmt(Number(evaluated[0]!["eval/accuracy"]))} (step ${evaluated[0]!["step"]}) → ${fmt(Number(evaluated[evaluated.length - 1]!["eval/accuracy"]))} (step ${evaluated[evaluated.length - 1]!["step"]})`,
    ],
    [
      "time in RL steps",
      `${(seconds / 60).toFixed(1)} min: rollout ${share("time/rollout")}, learner ${share("time/learner")}, sync ${share("time/sync")}, evaluation ${share("time/evaluation")}`,
    ],
  ];
  return { heading: "Summary", table: { columns: ["", "value"], rows: table } };
};

export const renderDashboard = (
  rows: ReadonlyArray<StepMetrics>,
  config: TrainConfig,
  warmStart: ReadonlyArray<StepMetrics> = [],
): string => {
  const steps = rows.map((r) => Number(r["step"]));
  const charts: PageSection[] = panels
    .map((panel) => ({
      heading: panel.heading,
      ...(panel.description && { description: panel.description }),
      chart: {
        type: "line" as const,
        labels: steps,
        xLabel: "step",
        series: panel.keys
          .filter((key) => rows.some((r) => r[key] !== undefined))
          .flatMap((key) => seriesFor(rows, key)),
      },
    }))
    .filter((section) => section.chart.series.length > 0);
  const warmStartPanel: PageSection[] =
    warmStart.length === 0
      ? []
      : [
          {
            heading: "Warm start: demonstration NLL per token",
            description: "Supervised steps on the environment's demonstrations before RL (lower is better).",
            chart: {
              type: "line",
              labels: warmStart.map((r) => Number(r["step"])),
              xLabel: "warm-start step",
              series: [
                {
                  name: "warm_start/nll",
                  values: warmStart.map((r) => Number(r["warm_start/nll"])),
                  points: true,
                },
              ],
            },
          },
        ];
  return renderChartPage({
    title: "workflow-r1 training run",
    subtitle: `${config.algorithm.name} on ${config.environment.name}, ${trainingSteps(rows).length}/${config.steps} steps`,
    sections: [summarySection(rows, config, warmStart), ...warmStartPanel, ...charts],
  });
};

export const writeDashboard = (
  file: string,
  rows: ReadonlyArray<StepMetrics>,
  config: TrainConfig,
  warmStart: ReadonlyArray<StepMetrics> = [],
) => writeFileAtomic(file, renderDashboard(rows, config, warmStart));
