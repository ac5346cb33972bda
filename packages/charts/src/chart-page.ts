/**
 * A self-contained HTML page of charts and tables. Chart.js's UMD build is read from node_modules
 * when the page is rendered and inlined in a <script> tag, so the page opens offline, from disk,
 * with no CDN. The training dashboard (`workflow-r1`) renders line charts with it, the evaluation
 * report (`@workflow-r1/eval`) bar charts with intervals and tables.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

export interface ChartSeries {
  readonly name: string;
  /** One value per label; null leaves a gap. */
  readonly values: ReadonlyArray<number | null>;
  /** Optional [low, high] per label, drawn as whiskers (e.g. a 95% bootstrap interval). */
  readonly intervals?: ReadonlyArray<readonly [number, number] | null>;
  /** Line charts: draw a marker at each value (sparse series such as held-out evaluations). */
  readonly points?: boolean;
  /** Line charts: a thin, light line (the raw series behind a smoothed one). */
  readonly faint?: boolean;
}

export interface ChartSpec {
  readonly type: "bar" | "line";
  /** Category labels (bar) or x values (line). */
  readonly labels: ReadonlyArray<string | number>;
  readonly series: ReadonlyArray<ChartSeries>;
  readonly xLabel?: string;
  readonly yLabel?: string;
  readonly yMin?: number;
  readonly yMax?: number;
}

export interface TableSpec {
  readonly columns: ReadonlyArray<string>;
  readonly rows: ReadonlyArray<ReadonlyArray<string | number | null>>;
}

export interface PageSection {
  readonly heading: string;
  /** A short paragraph under the heading (plain text). */
  readonly description?: string;
  readonly chart?: ChartSpec;
  readonly table?: TableSpec;
}

export interface ChartPage {
  readonly title: string;
  readonly subtitle?: string;
  readonly sections: ReadonlyArray<PageSection>;
}

/** Colour-blind-friendly palette (Okabe–Ito), cycled over series. */
export const palette = [
  "#0072B2",
  "#E69F00",
  "#009E73",
  "#D55E00",
  "#CC79A7",
  "#56B4E9",
  "#F0E442",
  "#000000",
];

let chartJsSource: string | undefined;

/** The minified Chart.js UMD bundle, read once from the installed `chart.js` package. */
export const chartJsBundle = (): string => {
  if (chartJsSource === undefined) {
    // `chart.js` exports only its module entry points; the UMD build sits beside them in dist/.
    const entry = createRequire(import.meta.url).resolve("chart.js");
    const source = readFileSync(join(dirname(entry), "chart.umd.min.js"), "utf8");
    // Drop the source-map comment: the map is not shipped inside the page.
    chartJsSource = source.replace(/\n?\/\/# sourceMappingURL=\S+\s*$/, "\n");
  }
  return chartJsSource;
};

export const escapeHtml = (text: string): string =>
  text.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );

/** JSON safe to embed in a <script> element (no `</script>`, no HTML comment openers). */
const scriptJson = (value: unknown): string =>
  JSON.stringify(value)
    .replace(/</g, "\\u003c")
    .replace(/>/g, "\\u003e")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");

/** Inline script source must not close its own <script> element early. */
const inlineScript = (source: string): string => source.replace(/<\/script/gi, "<\\/script");

const formatCell = (value: string | number | null): string => {
  if (value === null) return "—";
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : "—";
  return escapeHtml(value);
};

const renderTable = (table: TableSpec): string => {
  const head = table.columns.map((c) => `<th>${escapeHtml(c)}</th>`).join("");
  const body = table.rows
    .map((row) => `<tr>${row.map((cell) => `<td>${formatCell(cell)}</td>`).join("")}</tr>`)
    .join("\n");
  return `<table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
};

// Runs in the page: builds one Chart per canvas from the embedded JSON, without animation so a
// screenshot taken right after load shows the final chart, and draws interval whiskers.
const pageScript = `
(function () {
  var spec = JSON.parse(document.getElementById("chart-page-data").textContent);
  var palette = ${JSON.stringify(palette)};
  var whiskers = {
    id: "intervalWhiskers",
    afterDatasetsDraw: function (chart) {
      var ctx = chart.ctx, y = chart.scales.y;
      chart.data.datasets.forEach(function (dataset, d) {
        var meta = chart.getDatasetMeta(d);
        if (!dataset.intervals || meta.hidden) return;
        ctx.save();
        ctx.strokeStyle = "#222";
        ctx.lineWidth = 1.2;
        meta.data.forEach(function (element, i) {
          var interval = dataset.intervals[i];
          if (!interval) return;
          var x = element.x, lo = y.getPixelForValue(interval[0]), hi = y.getPixelForValue(interval[1]);
          var half = Math.max(2, Math.min(6, (element.width || 8) / 4));
          ctx.beginPath();
          ctx.moveTo(x, lo); ctx.lineTo(x, hi);
          ctx.moveTo(x - half, lo); ctx.lineTo(x + half, lo);
          ctx.moveTo(x - half, hi); ctx.lineTo(x + half, hi);
          ctx.stroke();
        });
        ctx.restore();
      });
    }
  };
  spec.sections.forEach(function (section, s) {
    if (!section.chart) return;
    var c = section.chart;
    var canvas = document.getElementById("chart-" + s);
    new Chart(canvas, {
      type: c.type,
      data: {
        labels: c.labels,
        datasets: c.series.map(function (series, i) {
          var colour = palette[i % palette.length];
          return {
            label: series.name,
            data: series.values,
            intervals: series.intervals,
            backgroundColor: colour,
            borderColor: series.faint ? colour + "66" : colour,
            borderWidth: c.type === "line" ? (series.faint ? 1 : 2) : 0,
            pointRadius: c.type === "line" ? (series.points ? 3.5 : 0) : undefined,
            spanGaps: true
          };
        })
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { position: "top" } },
        scales: {
          x: { title: { display: !!c.xLabel, text: c.xLabel || "" } },
          y: {
            title: { display: !!c.yLabel, text: c.yLabel || "" },
            min: c.yMin === undefined ? undefined : c.yMin,
            max: c.yMax === undefined ? undefined : c.yMax,
            beginAtZero: c.type === "bar"
          }
        }
      },
      plugins: [whiskers]
    });
  });
  window.__chartsReady = true;
  document.body.setAttribute("data-charts-ready", "true");
})();
`;

const style = `
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px auto; max-width: 1100px; color: #1b1b1b; padding: 0 16px; }
h1 { font-size: 1.6rem; margin-bottom: 4px; }
.subtitle { color: #555; margin-top: 0; }
section { margin: 32px 0; }
.chart { position: relative; height: 380px; background: #fff; }
table { border-collapse: collapse; margin-top: 12px; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f3f3f3; }
`;

/** Render a self-contained HTML page (Chart.js inlined) with one chart and/or table per section. */
export const renderChartPage = (page: ChartPage): string => {
  const sections = page.sections
    .map((section, s) => {
      const parts = [`<section id="section-${s}">`, `<h2>${escapeHtml(section.heading)}</h2>`];
      if (section.description) parts.push(`<p>${escapeHtml(section.description)}</p>`);
      if (section.chart) parts.push(`<div class="chart"><canvas id="chart-${s}"></canvas></div>`);
      if (section.table) parts.push(renderTable(section.table));
      parts.push("</section>");
      return parts.join("\n");
    })
    .join("\n");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${escapeHtml(page.title)}</title>
<style>${style}</style>
</head>
<body>
<h1>${escapeHtml(page.title)}</h1>
${page.subtitle ? `<p class="subtitle">${escapeHtml(page.subtitle)}</p>` : ""}
${sections}
<script type="application/json" id="chart-page-data">${scriptJson(page)}</script>
<script>${inlineScript(chartJsBundle())}</script>
<script>${inlineScript(pageScript)}</script>
</body>
</html>
`;
};
