// Environment benchmarks for env-qa: reward scoring and turn parsing (synthetic episodes: env-synthetic).
// Run after a build: `npx tsc -b && node bench/env.mjs` (imports the built package by name).
import { parseTurn, rewardParts, workflowR1Reward } from "@workflow-r1/env-qa";

const fmt = (n) => Math.round(n).toLocaleString("en-US");
const time = (label, n, unit, fn) => {
  fn(); // warm up
  const t0 = performance.now();
  for (let i = 0; i < n; i++) fn(i);
  const s = (performance.now() - t0) / 1000;
  console.log(`${label}: ${fmt(n / s)} ${unit}/s (${((s / n) * 1e6).toFixed(1)} µs each)`);
};

// A realistic 4-cycle transcript (~2.4 KB) with passages in the observations.
const passage = "Doc 1 (Title: Paris) Paris is the capital and most populous city of France. ".repeat(6);
const cycle = `<think>I should look this up first.</think>\n<tool>Search: capital of France</tool>\n<info>${passage}</info>\n`;
const transcript = `${cycle.repeat(4)}<think>The passages say Paris.</think>\n<answer>Paris</answer>`;
console.log(`transcript: ${transcript.length} characters`);
time("workflowR1Reward (4-cycle transcript)", 20_000, "transcripts", () =>
  workflowR1Reward(transcript, ["Paris", "Lutetia"]),
);
time("rewardParts (format, answer, EM, sub-EM, F1)", 20_000, "transcripts", () =>
  rewardParts(transcript, ["Paris"]),
);
time("parseTurn", 200_000, "turns", () =>
  parseTurn("<think>look it up</think>\n<tool>Search: capital of France</tool>"),
);
