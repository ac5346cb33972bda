import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderChartPage } from "@workflow-r1/charts";
import { mulberry32 } from "@workflow-r1/core";
import { type Browser, chromium } from "playwright-core";
import { PNG } from "pngjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type EvalReport,
  type QuestionResult,
  renderMarkdown,
  type SampleResult,
  summarizeAll,
  writeReports,
} from "../src/index.js";

const sample = (em: number, extra: Partial<SampleResult> = {}): SampleResult => ({
  prediction: em ? "yes" : "no",
  em,
  subEm: em,
  f1: em ? 1 : 0.25,
  format: 1,
  turns: 3,
  tokens: 120,
  operatorCalls: { Search: 2, Answer: 1 },
  finishReason: "answer",
  ...extra,
});

/** Synthetic results: each method has its own accuracy, drawn from a seeded generator. */
const syntheticResults = (): QuestionResult[] => {
  const random = mulberry32(9);
  const accuracy: Record<string, number> = { direct: 0.2, cot: 0.35, workflow: 0.6 };
  const out: QuestionResult[] = [];
  for (const benchmark of ["bamboogle", "hotpotqa", "nq"])
    for (const method of Object.keys(accuracy))
      for (let q = 0; q < 40; q++) {
        const samples = [0, 1].map(() => sample(random() < accuracy[method]! ? 1 : 0));
        const em = (samples[0]!.em + samples[1]!.em) / 2;
        out.push({
          benchmark,
          method,
          taskId: `test_${q}`,
          question: `q${q}`,
          goldenAnswers: ["yes"],
          prediction: samples[0]!.prediction,
          em,
          subEm: em,
          f1: em,
          format: 1,
          turns: 3,
          tokens: 120,
          operatorCalls: method === "workflow" ? { Search: 2, Answer: 1 } : {},
          samples,
          elapsedMs: 5,
        });
      }
  return out;
};

const report = (): EvalReport => ({
  config: { methods: ["direct", "cot", "workflow"], samples: 2, model: "tiny.gguf" },
  createdAt: "2026-01-01T00:00:00.000Z",
  summaries: summarizeAll(syntheticResults()),
});

describe("summaries", () => {
  it("aggregates per benchmark × method with pass@k and operator usage", () => {
    const summaries = summarizeAll(syntheticResults());
    expect(summaries.map((s) => `${s.benchmark}/${s.method}`)).toHaveLength(9);
    const workflow = summaries.find((s) => s.benchmark === "nq" && s.method === "workflow")!;
    expect(workflow.questions).toBe(40);
    expect(workflow.samples).toBe(2);
    expect(workflow.operatorCalls["Search"]!.mean).toBe(2);
    expect(Object.keys(workflow.passAtK)).toEqual(["1", "2"]);
    // pass@1 over 2 samples is the mean sample EM = mean@k; pass@2 is at least that.
    expect(workflow.passAtK["1"]).toBeCloseTo(workflow.meanAtK, 12);
    expect(workflow.passAtK["2"]!).toBeGreaterThanOrEqual(workflow.passAtK["1"]!);
    expect(workflow.em.low).toBeLessThanOrEqual(workflow.em.mean);
    expect(workflow.em.high).toBeGreaterThanOrEqual(workflow.em.mean);
    const direct = summaries.find((s) => s.benchmark === "nq" && s.method === "direct")!;
    expect(direct.em.mean).toBeLessThan(workflow.em.mean);
    expect(direct.operatorCalls).toEqual({});
  });
});

describe("Markdown report", () => {
  it("has the paper's methods × benchmarks table with the average column", () => {
    const r = report();
    const md = renderMarkdown(r);
    const lines = md.split("\n");
    const header = lines.find((l) => l.startsWith("| Method"))!;
    expect(header).toBe("| Method | bamboogle | hotpotqa | nq | Avg. |");
    const workflowRow = lines.find((l) => l.startsWith("| workflow |"))!;
    const cells = workflowRow
      .split("|")
      .map((c) => c.trim())
      .filter(Boolean);
    const em = r.summaries.filter((s) => s.method === "workflow").map((s) => 100 * s.em.mean);
    expect(cells.slice(1, 4)).toEqual(em.map((x) => x.toFixed(1)));
    expect(cells[4]).toBe((em.reduce((a, b) => a + b, 0) / 3).toFixed(1));
    expect(md).toContain("### hotpotqa");
    expect(md).toContain("Search calls");
  });
});

const chromiumPath = "/usr/bin/chromium";
const haveChromium = existsSync(chromiumPath);
if (!haveChromium && process.env.CI)
  throw new Error(`${chromiumPath} is missing in CI: install the packages in packages/eval/APT_PACKAGES.txt`);
if (!haveChromium)
  console.warn(
    `[eval] skipping the headless-Chromium report tests: ${chromiumPath} is absent (apt-get install chromium)`,
  );

/** Count pixels in a PNG that differ from the background (white) and the number of distinct colours. */
const pixelStats = (png: Buffer) => {
  const image = PNG.sync.read(png);
  let nonBackground = 0;
  const colours = new Set<number>();
  for (let i = 0; i < image.data.length; i += 4) {
    const [r, g, b] = [image.data[i]!, image.data[i + 1]!, image.data[i + 2]!];
    colours.add((r << 16) | (g << 8) | b);
    if (r < 245 || g < 245 || b < 245) nonBackground++;
  }
  return { nonBackground, total: image.width * image.height, colours: colours.size };
};

describe.skipIf(!haveChromium)("HTML report in headless Chromium", () => {
  let browser: Browser;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "eval-report-"));
    browser = await chromium.launch({
      executablePath: chromiumPath,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const open = async (file: string) => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const problems: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") problems.push(`${m.type()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
    // Self-contained: any request other than the file itself is a failure.
    page.on("request", (r) => {
      if (!r.url().startsWith("file://") && !r.url().startsWith("data:"))
        problems.push(`request: ${r.url()}`);
    });
    await page.goto(`file://${file}`);
    await page.waitForFunction(
      () => (globalThis as { __chartsReady?: boolean }).__chartsReady === true,
      null,
      {
        timeout: 20_000,
      },
    );
    return { page, problems };
  };

  it("the eval report opens without console errors and its charts are drawn", async () => {
    const files = await writeReports(dir, report());
    const html = await readFile(files.html, "utf8");
    expect(html).not.toMatch(/<script[^>]+src=/);
    expect(html).not.toMatch(/https?:\/\/cdn/);
    const { page, problems } = await open(files.html);
    expect(problems).toEqual([]);
    expect(await page.locator("canvas").count()).toBe(7); // overview + 3 benchmarks × (metrics, operator use)
    const canvas = page.locator("#chart-0");
    const box = (await canvas.boundingBox())!;
    expect(box.width).toBeGreaterThan(300);
    expect(box.height).toBeGreaterThan(200);
    const stats = pixelStats(await page.screenshot({ clip: box }));
    // Bars in three method colours, axes and labels: well above a blank canvas.
    expect(stats.nonBackground / stats.total).toBeGreaterThan(0.03);
    expect(stats.colours).toBeGreaterThan(10);
    expect(await page.locator("table").first().textContent()).toContain("workflow");
    await page.close();
  });

  it("an empty canvas would fail the pixel check (the check can fail)", async () => {
    const file = join(dir, "blank.html");
    const { writeFile } = await import("node:fs/promises");
    await writeFile(
      file,
      renderChartPage({
        title: "blank",
        sections: [{ heading: "nothing", chart: { type: "bar", labels: [], series: [] } }],
      }),
    );
    const { page, problems } = await open(file);
    expect(problems).toEqual([]);
    const box = (await page.locator("#chart-0").boundingBox())!;
    const stats = pixelStats(await page.screenshot({ clip: box }));
    const full = pixelStats(
      await (async () => {
        const p2 = await open(join(dir, "report.html"));
        const b = (await p2.page.locator("#chart-0").boundingBox())!;
        const shot = await p2.page.screenshot({ clip: b });
        await p2.page.close();
        return shot;
      })(),
    );
    expect(stats.nonBackground).toBeLessThan(full.nonBackground / 2);
    await page.close();
  });

  it("line charts render for the training dashboard", async () => {
    const file = join(dir, "line.html");
    const { writeFile } = await import("node:fs/promises");
    const steps = Array.from({ length: 50 }, (_, i) => i);
    await writeFile(
      file,
      renderChartPage({
        title: "training <dashboard>",
        sections: [
          {
            heading: "reward",
            chart: {
              type: "line",
              labels: steps,
              series: [{ name: "mean reward", values: steps.map((s) => Math.sin(s / 8)) }],
              xLabel: "step",
            },
            table: { columns: ["step", "reward"], rows: [[1, 0.5]] },
          },
        ],
      }),
    );
    const { page, problems } = await open(file);
    expect(problems).toEqual([]);
    expect(await page.title()).toBe("training <dashboard>");
    const box = (await page.locator("#chart-0").boundingBox())!;
    expect(pixelStats(await page.screenshot({ clip: box })).nonBackground).toBeGreaterThan(500);
    await page.close();
  });
});
