import { describe, expect, it } from "vitest";
import { chartJsBundle, escapeHtml, renderChartPage } from "../src/index.js";

const embedded = (html: string) =>
  JSON.parse(/<script type="application\/json" id="chart-page-data">(.*?)<\/script>/s.exec(html)![1]!);

describe("renderChartPage", () => {
  const page = renderChartPage({
    title: "reward <b>&</b>",
    subtitle: "seed 1",
    sections: [
      {
        heading: "curve",
        description: "a line",
        chart: {
          type: "line",
          labels: [1, 2, 3],
          series: [{ name: "</script><script>alert(1)</script>", values: [0.1, null, 0.3] }],
        },
      },
      {
        heading: "table",
        table: {
          columns: ["a", "b"],
          rows: [
            ["<x>", Number.NaN],
            [null, 2],
          ],
        },
      },
    ],
  });

  it("is one self-contained document with Chart.js inlined and no external resources", () => {
    expect(page.startsWith("<!doctype html>")).toBe(true);
    expect(page).toContain(chartJsBundle().slice(0, 200));
    expect(page).not.toMatch(/<script[^>]+src=/);
    expect(page).not.toMatch(/<link[^>]+stylesheet/);
    expect(page).not.toContain("sourceMappingURL");
  });

  it("escapes titles and cells, and keeps chart data from closing its script element", () => {
    expect(page).toContain("<title>reward &lt;b&gt;&amp;&lt;/b&gt;</title>");
    expect(page).toContain("<td>&lt;x&gt;</td><td>—</td>");
    expect(page).toContain("<td>—</td><td>2</td>");
    // The only "</script>" occurrences close the three script elements.
    expect(page.match(/<\/script>/g)).toHaveLength(3);
    const data = embedded(page);
    expect(data.sections[0].chart.series[0].name).toBe("</script><script>alert(1)</script>");
    expect(data.sections[0].chart.series[0].values).toEqual([0.1, null, 0.3]);
  });

  it("gives each charted section its own canvas and leaves table-only sections without one", () => {
    expect(page).toContain('<canvas id="chart-0">');
    expect(page).not.toContain('<canvas id="chart-1">');
  });
});

describe("escapeHtml", () => {
  it("escapes the five HTML-significant characters", () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe("&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  });
});
