/**
 * `dashboard.html`: the run's curves as one self-contained page, rendered with the same chart
 * page builder as the evaluation reports (Chart.js inlined, opens offline).
 */
import { type PageSection, renderChartPage } from "@workflow-r1/eval";
import type { TrainConfig } from "../config.js";
import { writeFileAtomic } from "./atomic.js";
import { type StepMetrics, trainingSteps } from "./metrics-log.js";

const panels: ReadonlyArray<{ heading: string; keys: ReadonlyArray<string>; description?: string }> = [
  {
    heading: "Reward",
    keys: ["reward/mean", "eval/reward/mean"],
    description: "Mean episode reward (format + answer) per step; eval on held-out tasks.",
  },
  { heading: "Accuracy (exact match)", keys: ["accuracy", "eval/accuracy"] },
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

export const renderDashboard = (rows: ReadonlyArray<StepMetrics>, config: TrainConfig): string => {
  const steps = rows.map((r) => Number(r["step"]));
  const sections: PageSection[] = panels
    .map((panel) => ({
      heading: panel.heading,
      ...(panel.description && { description: panel.description }),
      chart: {
        type: "line" as const,
        labels: steps,
        xLabel: "step",
        series: panel.keys
          .filter((key) => rows.some((r) => r[key] !== undefined))
          .map((key) => ({
            name: key,
            values: rows.map((r) => (r[key] === undefined ? null : Number(r[key]))),
          })),
      },
    }))
    .filter((section) => section.chart.series.length > 0);
  return renderChartPage({
    title: "workflow-r1 training run",
    subtitle: `${config.algorithm.name} on ${config.environment.name}, ${trainingSteps(rows).length}/${config.steps} steps`,
    sections,
  });
};

export const writeDashboard = (file: string, rows: ReadonlyArray<StepMetrics>, config: TrainConfig): void =>
  writeFileAtomic(file, renderDashboard(rows, config));
