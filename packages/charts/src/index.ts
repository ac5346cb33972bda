/**
 * @workflow-r1/charts — self-contained HTML pages of charts and tables (Chart.js inlined), shared by
 * the training dashboard and the evaluation report.
 */
export {
  type ChartPage,
  type ChartSeries,
  type ChartSpec,
  chartJsBundle,
  escapeHtml,
  type PageSection,
  palette,
  renderChartPage,
  type TableSpec,
} from "./chart-page.js";
