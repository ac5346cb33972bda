/**
 * Reports of an evaluation: JSON (every number and the config), a Markdown table (methods ×
 * benchmarks, EM as in the paper) and a self-contained HTML page with charts.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type ChartPage, renderChartPage, type TableSpec } from "@workflow-r1/charts";
import type { BenchmarkSummary } from "./results.js";
import type { Estimate } from "./statistics.js";

export interface EvalReport {
  /** The run's settings (method, model, samples, sampling, …), recorded verbatim. */
  readonly config: Readonly<Record<string, unknown>>;
  readonly createdAt: string;
  readonly summaries: ReadonlyArray<BenchmarkSummary>;
}

const pct = (x: number): string => (Number.isFinite(x) ? (100 * x).toFixed(1) : "—");
const num = (x: number, digits = 2): string => (Number.isFinite(x) ? x.toFixed(digits) : "—");
const interval = (e: Estimate, scale = 100, digits = 1): string =>
  Number.isFinite(e.mean)
    ? `${(scale * e.mean).toFixed(digits)} [${(scale * e.low).toFixed(digits)}, ${(scale * e.high).toFixed(digits)}]`
    : "—";

const unique = (values: ReadonlyArray<string>): string[] => [...new Set(values)];

/** Benchmarks and methods in first-seen order, and a lookup of their summary. */
const grid = (summaries: ReadonlyArray<BenchmarkSummary>) => {
  const benchmarks = unique(summaries.map((s) => s.benchmark));
  const methods = unique(summaries.map((s) => s.method));
  const byKey = new Map(summaries.map((s) => [`${s.benchmark}\u0000${s.method}`, s]));
  const find = (benchmark: string, method: string) => byKey.get(`${benchmark}\u0000${method}`);
  return { benchmarks, methods, find };
};

/** Unweighted average over benchmarks of a method's EM (the paper's "Avg." column). */
const averageEm = (summaries: ReadonlyArray<BenchmarkSummary>, method: string): number => {
  const own = summaries.filter((s) => s.method === method && Number.isFinite(s.em.mean));
  return own.length === 0 ? Number.NaN : own.reduce((a, s) => a + s.em.mean, 0) / own.length;
};

const operatorsOf = (summaries: ReadonlyArray<BenchmarkSummary>): string[] =>
  unique(summaries.flatMap((s) => Object.keys(s.operatorCalls))).sort();

const detailColumns = (operators: ReadonlyArray<string>): string[] => [
  "method",
  "n",
  "k",
  "EM [95% CI]",
  "sub-EM [95% CI]",
  "F1 [95% CI]",
  "format %",
  "turns",
  "tokens",
  ...operators.map((o) => `${o} calls`),
  "pass@k",
  "mean@k",
  "errors",
];

const passText = (s: BenchmarkSummary): string =>
  Object.entries(s.passAtK)
    .map(([k, v]) => `@${k}=${pct(v)}`)
    .join(" ");

const detailRow = (s: BenchmarkSummary, operators: ReadonlyArray<string>): string[] => [
  s.method,
  String(s.questions),
  String(s.samples),
  interval(s.em),
  interval(s.subEm),
  interval(s.f1),
  pct(s.format.mean),
  num(s.turns.mean),
  num(s.tokens.mean, 1),
  ...operators.map((o) => num(s.operatorCalls[o]?.mean ?? 0)),
  passText(s),
  pct(s.meanAtK),
  String(s.errors),
];

const markdownTable = (
  columns: ReadonlyArray<string>,
  rows: ReadonlyArray<ReadonlyArray<string>>,
): string => {
  const escapeCell = (cell: string) => cell.replace(/\|/g, "\\|");
  const head = `| ${columns.map(escapeCell).join(" | ")} |`;
  const rule = `| ${columns.map((_, i) => (i === 0 ? "---" : "---:")).join(" | ")} |`;
  return [head, rule, ...rows.map((row) => `| ${row.map(escapeCell).join(" | ")} |`)].join("\n");
};

/** Markdown: the paper's table (EM ×100, methods × benchmarks, with the average), then details. */
export const renderMarkdown = (report: EvalReport): string => {
  const { benchmarks, methods, find } = grid(report.summaries);
  const operators = operatorsOf(report.summaries);
  const main = markdownTable(
    ["Method", ...benchmarks, "Avg."],
    methods.map((method) => [
      method,
      ...benchmarks.map((b) => {
        const s = find(b, method);
        return s ? pct(s.em.mean) : "—";
      }),
      pct(averageEm(report.summaries, method)),
    ]),
  );
  const details = benchmarks.map((benchmark) => {
    const rows = methods.flatMap((m) => {
      const s = find(benchmark, m);
      return s ? [detailRow(s, operators)] : [];
    });
    return `### ${benchmark}\n\n${markdownTable(detailColumns(operators), rows)}`;
  });
  const config = Object.entries(report.config)
    .map(([k, v]) => `- ${k}: \`${JSON.stringify(v)}\``)
    .join("\n");
  const failing = report.summaries.filter((s) => (s.errorMessages ?? []).length > 0);
  const errors =
    failing.length === 0
      ? []
      : [
          "## Errors",
          "",
          "Samples that failed (scored 0); the results file holds each sample's message.",
          "",
          ...failing.flatMap((s) => [
            `- ${s.benchmark} / ${s.method}: ${s.errors} question(s) failed entirely`,
            ...(s.errorMessages ?? []).map((m) => `  - \`${m.replace(/`/g, "'")}\``),
          ]),
          "",
        ];
  return [
    "# Evaluation",
    "",
    "Exact match (EM, %) per benchmark; percentages of questions, mean over samples when k > 1.",
    "",
    main,
    "",
    "## Per benchmark",
    "",
    "Intervals are 95% percentile-bootstrap intervals over questions. pass@k is the unbiased estimator " +
      "(Chen et al., 2021) of EM over k of the samples.",
    "",
    details.join("\n\n"),
    "",
    ...errors,
    "## Config",
    "",
    config,
    "",
    `Created ${report.createdAt}.`,
    "",
  ].join("\n");
};

/** The page the HTML report renders: grouped bars of EM, then one section per benchmark. */
export const reportPage = (report: EvalReport): ChartPage => {
  const { benchmarks, methods, find } = grid(report.summaries);
  const operators = operatorsOf(report.summaries);
  const series = (pick: (s: BenchmarkSummary) => Estimate) =>
    methods.map((method) => ({
      name: method,
      values: benchmarks.map((b) => {
        const s = find(b, method);
        return s && Number.isFinite(pick(s).mean) ? 100 * pick(s).mean : null;
      }),
      intervals: benchmarks.map((b): readonly [number, number] | null => {
        const s = find(b, method);
        return s && Number.isFinite(pick(s).mean) ? [100 * pick(s).low, 100 * pick(s).high] : null;
      }),
    }));
  const mainTable: TableSpec = {
    columns: ["Method", ...benchmarks, "Avg."],
    rows: methods.map((method) => [
      method,
      ...benchmarks.map((b) => {
        const s = find(b, method);
        return s ? pct(s.em.mean) : null;
      }),
      pct(averageEm(report.summaries, method)),
    ]),
  };
  const perBenchmark = benchmarks.flatMap((benchmark) => {
    const present = methods.filter((m) => find(benchmark, m));
    const metricLabels = ["EM", "sub-EM", "F1", "format"];
    const pickers: Array<(s: BenchmarkSummary) => Estimate> = [
      (s) => s.em,
      (s) => s.subEm,
      (s) => s.f1,
      (s) => s.format,
    ];
    const usage = unique(present.flatMap((m) => Object.keys(find(benchmark, m)!.operatorCalls))).sort();
    const metrics = {
      heading: benchmark,
      description: `${find(benchmark, present[0]!)?.questions ?? 0} questions. Bars: % with 95% bootstrap intervals.`,
      chart: {
        type: "bar" as const,
        labels: metricLabels,
        yLabel: "%",
        yMin: 0,
        yMax: 100,
        series: present.map((method) => {
          const s = find(benchmark, method)!;
          return {
            name: method,
            values: pickers.map((p) => (Number.isFinite(p(s).mean) ? 100 * p(s).mean : null)),
            intervals: pickers.map((p): readonly [number, number] | null =>
              Number.isFinite(p(s).mean) ? [100 * p(s).low, 100 * p(s).high] : null,
            ),
          };
        }),
      },
      table: {
        columns: detailColumns(operators),
        rows: present.map((m) => detailRow(find(benchmark, m)!, operators)),
      },
    };
    if (usage.length === 0) return [metrics];
    const operatorUse = {
      heading: `${benchmark}: operator calls per episode`,
      description: "Mean number of calls of each operator per episode, with 95% bootstrap intervals.",
      chart: {
        type: "bar" as const,
        labels: usage,
        yLabel: "calls per episode",
        series: present.map((method) => {
          const s = find(benchmark, method)!;
          return {
            name: method,
            values: usage.map((o) => s.operatorCalls[o]?.mean ?? 0),
            intervals: usage.map((o): readonly [number, number] | null => {
              const e = s.operatorCalls[o];
              return e ? [e.low, e.high] : null;
            }),
          };
        }),
      },
    };
    return [metrics, operatorUse];
  });
  return {
    title: "Workflow-R1 evaluation",
    subtitle: `Created ${report.createdAt}. ${Object.entries(report.config)
      .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
      .join(", ")}`,
    sections: [
      {
        heading: "Exact match by benchmark",
        description: "EM (%) of each method on each benchmark, with 95% bootstrap intervals.",
        chart: {
          type: "bar",
          labels: benchmarks,
          series: series((s) => s.em),
          yLabel: "EM (%)",
          yMin: 0,
          yMax: 100,
        },
        table: mainTable,
      },
      ...perBenchmark,
    ],
  };
};

export const renderHtml = (report: EvalReport): string => renderChartPage(reportPage(report));

/** JSON with every number; non-finite numbers (empty groups) become null. */
export const renderJson = (report: EvalReport): string =>
  `${JSON.stringify(report, (_key, value) => (typeof value === "number" && !Number.isFinite(value) ? null : value), 2)}\n`;

export interface ReportFiles {
  readonly json: string;
  readonly markdown: string;
  readonly html: string;
}

/** Write report.json, report.md and report.html into `dir` (created when missing). */
export const writeReports = async (dir: string, report: EvalReport): Promise<ReportFiles> => {
  await mkdir(dir, { recursive: true });
  const files = {
    json: join(dir, "report.json"),
    markdown: join(dir, "report.md"),
    html: join(dir, "report.html"),
  };
  await writeFile(files.json, renderJson(report));
  await writeFile(files.markdown, renderMarkdown(report));
  await writeFile(files.html, renderHtml(report));
  return files;
};
