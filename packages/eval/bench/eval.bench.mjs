// Speed of the evaluation's own computations (no model): bootstrap intervals, summaries and
// report rendering. Run after `npm run build`: `npm run bench -w @workflow-r1/eval`.
import { mulberry32 } from "@workflow-r1/core";
import { bootstrapMean, renderHtml, renderMarkdown, summarizeAll } from "@workflow-r1/eval";

const time = (label, repeat, fn) => {
  fn();
  const start = performance.now();
  for (let i = 0; i < repeat; i++) fn();
  const ms = (performance.now() - start) / repeat;
  console.log(`${label.padEnd(58)} ${ms.toFixed(2).padStart(9)} ms`);
  return ms;
};

const random = mulberry32(1);
for (const n of [125, 500, 3610]) {
  const values = Array.from({ length: n }, () => (random() < 0.4 ? 1 : 0));
  time(`bootstrapMean n=${n}, 1000 resamples`, 20, () => bootstrapMean(values));
}

const benchmarks = ["nq", "triviaqa", "popqa", "hotpotqa", "2wikimultihopqa", "musique", "bamboogle"];
const methods = ["direct", "cot", "sc", "workflow"];
const results = [];
for (const benchmark of benchmarks)
  for (const method of methods)
    for (let q = 0; q < 500; q++) {
      const samples = Array.from({ length: 5 }, () => {
        const em = random() < 0.4 ? 1 : 0;
        return {
          prediction: "x",
          em,
          subEm: em,
          f1: em,
          format: 1,
          turns: 3,
          tokens: 200,
          operatorCalls: { Search: 2 },
          finishReason: "answer",
        };
      });
      const em = samples.reduce((a, s) => a + s.em, 0) / 5;
      results.push({
        benchmark,
        method,
        taskId: `q${q}`,
        question: "q",
        goldenAnswers: ["x"],
        prediction: "x",
        em,
        subEm: em,
        f1: em,
        format: 1,
        turns: 3,
        tokens: 200,
        operatorCalls: { Search: 2 },
        samples,
        elapsedMs: 1,
      });
    }
let summaries;
time(`summarizeAll 7 benchmarks x 4 methods x 500 questions x k=5`, 3, () => {
  summaries = summarizeAll(results);
});
const report = { config: {}, createdAt: new Date().toISOString(), summaries };
let html = "";
time("renderHtml (Chart.js inlined)", 20, () => {
  html = renderHtml(report);
});
time("renderMarkdown", 20, () => renderMarkdown(report));
console.log(`HTML report size: ${(html.length / 1024).toFixed(0)} KiB`);
