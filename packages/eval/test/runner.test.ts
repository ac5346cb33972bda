import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Task } from "@workflow-r1/core";
import { answerScore, parseTurn, extractAnswer as rewardAnswer } from "@workflow-r1/env-qa";
import { Effect, Exit } from "effect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type Benchmark,
  type EvaluateOptions,
  evaluate,
  extractAnswer,
  majorityVote,
  methodNames,
  readResults,
  registerMethod,
} from "../src/index.js";
import { fakePolicy } from "./fake-policy.js";

const tasks: Task[] = [
  { id: "q0", question: "Capital of France?", goldenAnswers: ["Paris"] },
  { id: "q1", question: "Largest planet?", goldenAnswers: ["Jupiter"] },
  { id: "q2", question: "Author of Hamlet?", goldenAnswers: ["William Shakespeare", "Shakespeare"] },
  { id: "q3", question: "Boiling point of water in Celsius?", goldenAnswers: ["100"] },
];
const bench: Benchmark = { name: "toy", tasks };

/** Knows q0 and q2 (q2 only partially), gets q1 wrong, writes no answer for q3. */
const script = (prompt: string): string => {
  const think = prompt.includes("<think>") ? "<think> recall </think> " : "";
  if (prompt.includes("France")) return `${think}<answer> paris </answer>`;
  if (prompt.includes("planet")) return `${think}<answer>Saturn</answer>`;
  if (prompt.includes("Hamlet")) return `${think}<answer>the playwright Shakespeare</answer>`;
  return "I am not sure.";
};

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "eval-runner-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const run = (options: EvaluateOptions, answer: (prompt: string, seed: number) => string | Error = script) => {
  const policy = fakePolicy(answer);
  return Effect.runPromise(Effect.provide(evaluate(options), policy.layer)).then((r) => ({
    ...r,
    calls: policy.calls(),
  }));
};

describe("evaluate (scripted policy)", () => {
  it("scores direct answers with EM, sub-EM, F1 and format per question", async () => {
    const { results, report } = await run({ benchmarks: [bench], method: "direct" });
    expect(results.map((r) => [r.taskId, r.em, r.subEm])).toEqual([
      ["q0", 1, 1],
      ["q1", 0, 0],
      ["q2", 0, 1],
      ["q3", 0, 0],
    ]);
    expect(results[2]!.f1).toBeGreaterThan(0);
    expect(results[2]!.f1).toBeLessThan(1);
    expect(results[3]!.prediction).toBeNull();
    expect(results.map((r) => r.format)).toEqual([1, 1, 1, 0]);
    const summary = report.summaries[0]!;
    expect(summary.em.mean).toBe(0.25);
    expect(summary.subEm.mean).toBe(0.5);
    expect(summary.format.mean).toBe(0.75);
    expect(summary.em.low).toBeLessThanOrEqual(0.25);
    expect(summary.em.high).toBeGreaterThanOrEqual(0.25);
  });

  it("uses the cot format (think then answer)", async () => {
    const { results } = await run({ benchmarks: [bench], method: "cot" });
    expect(results.map((r) => r.format)).toEqual([1, 1, 1, 0]);
    const noThink = await run({ benchmarks: [bench], method: "cot" }, (p) =>
      script(p.replaceAll("<think>", "")),
    );
    expect(noThink.results.map((r) => r.format)).toEqual([0, 0, 0, 0]);
  });

  it("self-consistency votes on normalised answers over k samples", async () => {
    // Seeds differ per sample: 2 of 5 say "Saturn", 3 say "jupiter" in various spellings.
    const spellings = ["Jupiter", "Saturn", "jupiter.", "Saturn", "  JUPITER"];
    let i = 0;
    const { results, report } = await run(
      { benchmarks: [bench], method: "sc", samples: 5, limit: 2, concurrency: 1 },
      (p) => (p.includes("planet") ? `<think> x </think> <answer>${spellings[i++ % 5]}</answer>` : script(p)),
    );
    const planet = results.find((r) => r.taskId === "q1")!;
    expect(planet.samples).toHaveLength(5);
    expect(planet.prediction).toBe("Jupiter");
    expect(planet.em).toBe(1);
    // pass@k counts sample-level correctness: 3 of 5 correct.
    const summary = report.summaries[0]!;
    expect(summary.samples).toBe(5);
    expect(summary.passAtK["1"]).toBeCloseTo((1 + 3 / 5) / 2, 12);
    expect(summary.passAtK["5"]).toBe(1);
    expect(summary.meanAtK).toBeCloseTo((1 + 3 / 5) / 2, 12);
    // The cost of a vote is all k samples.
    expect(planet.tokens).toBe(planet.samples.reduce((a, s) => a + s.tokens, 0));
  });

  it("respects limit and runs several methods into one methods × benchmarks report", async () => {
    const { results, report } = await run({
      benchmarks: [bench, { name: "toy2", tasks }],
      method: ["direct", "cot"],
      limit: 2,
    });
    expect(results).toHaveLength(8);
    expect(report.summaries.map((s) => `${s.benchmark}/${s.method}/${s.questions}`)).toEqual([
      "toy/direct/2",
      "toy/cot/2",
      "toy2/direct/2",
      "toy2/cot/2",
    ]);
  });

  it("resumes: a second run scores nothing new and reports the same numbers", async () => {
    const resultsFile = join(dir, "results.jsonl");
    const first = await run({ benchmarks: [bench], method: "direct", resultsFile });
    expect(first.scored).toBe(4);
    expect(first.calls).toBe(4);
    const lines = (await readFile(resultsFile, "utf8")).trim().split("\n");
    expect(lines).toHaveLength(4);
    const second = await run({ benchmarks: [bench], method: "direct", resultsFile });
    expect(second.scored).toBe(0);
    expect(second.resumed).toBe(4);
    expect(second.calls).toBe(0);
    expect(second.report.summaries).toEqual(first.report.summaries);
    expect((await readFile(resultsFile, "utf8")).trim().split("\n")).toHaveLength(4);
    // A larger limit scores only the new questions; other samples counts are scored afresh.
    const third = await run({
      benchmarks: [{ name: "toy", tasks: [...tasks, { id: "q4", question: "2+2?", goldenAnswers: ["4"] }] }],
      method: "direct",
      resultsFile,
    });
    expect(third.scored).toBe(1);
    const fourth = await run({ benchmarks: [bench], method: "direct", resultsFile, samples: 2 });
    expect(fourth.scored).toBe(4);
  });

  it("repairs a torn last line and rejects a corrupt line in the middle", async () => {
    const resultsFile = join(dir, "results.jsonl");
    await run({ benchmarks: [bench], method: "direct", resultsFile, limit: 2 });
    const good = await readFile(resultsFile, "utf8");
    await writeFile(resultsFile, `${good}{"benchmark": "toy", "meth`);
    const resumed = await run({ benchmarks: [bench], method: "direct", resultsFile });
    expect(resumed.resumed).toBe(2);
    expect(resumed.scored).toBe(2);
    expect(await Effect.runPromise(readResults(resultsFile))).toHaveLength(4);

    await writeFile(resultsFile, `${good.split("\n")[0]}\nnot json\n${good.split("\n")[1]}\n`);
    const exit = await Effect.runPromiseExit(readResults(resultsFile));
    expect(Exit.isFailure(exit)).toBe(true);
    expect(String(Exit.isFailure(exit) ? exit.cause : "")).toMatch(/results\.jsonl:2: not valid JSON/);
  });

  it("records sampling failures as errors with their message, persists them as failed and retries them", async () => {
    const resultsFile = join(dir, "results.jsonl");
    const { results, report } = await run({ benchmarks: [bench], method: "direct", resultsFile }, (p) =>
      p.includes("planet") ? new Error("decode failed") : script(p),
    );
    const failed = results.find((r) => r.taskId === "q1")!;
    expect(failed.samples[0]!.error).toMatch(/PolicyError: decode failed/);
    expect(failed.em).toBe(0);
    expect(report.summaries[0]!.errors).toBe(1);
    expect(report.summaries[0]!.errorMessages).toEqual([expect.stringMatching(/PolicyError: decode failed/)]);
    const saved = await Effect.runPromise(readResults(resultsFile));
    expect(saved.map((r) => r.taskId).sort()).toEqual(["q0", "q1", "q2", "q3"]);
    const record = saved.find((r) => r.taskId === "q1")!;
    expect(record.failed).toBe(true);
    expect(record.samples[0]!.error).toMatch(/decode failed/);
    // The next run retries the failed question only.
    const again = await run({ benchmarks: [bench], method: "direct", resultsFile }, script);
    expect(again.scored).toBe(1);
    expect(again.resumed).toBe(3);
  });

  it("records a policy that throws as a failed question with the exception's message, not a crashed run", async () => {
    const resultsFile = join(dir, "results.jsonl");
    const { results, report, failed } = await run(
      { benchmarks: [bench], method: ["direct", "cot"], resultsFile },
      (p) => {
        if (p.includes("planet")) throw new RangeError("kv cache exhausted");
        return script(p);
      },
    );
    expect(failed).toBe(2);
    for (const method of ["direct", "cot"]) {
      const record = results.find((r) => r.taskId === "q1" && r.method === method)!;
      expect(record.failed).toBe(true);
      expect(record.samples[0]!.error).toBe("crashed: RangeError: kv cache exhausted");
    }
    expect(report.summaries.map((s) => [s.method, s.errors, s.errorMessages])).toEqual([
      ["direct", 1, ["crashed: RangeError: kv cache exhausted"]],
      ["cot", 1, ["crashed: RangeError: kv cache exhausted"]],
    ]);
    // The other questions were answered and everything is in the results file.
    expect(results.filter((r) => !r.failed)).toHaveLength(6);
    const saved = await Effect.runPromise(readResults(resultsFile));
    expect(saved.filter((r) => r.failed).map((r) => r.samples[0]!.error)).toEqual([
      "crashed: RangeError: kv cache exhausted",
      "crashed: RangeError: kv cache exhausted",
    ]);
  });

  it("counts earlier answers under another key as stale and answers those questions again", async () => {
    const resultsFile = join(dir, "results.jsonl");
    const options = { benchmarks: [bench], method: "direct", resultsFile };
    await run({ ...options, identity: { model: "sha256:a" } });
    const other = await run({ ...options, identity: { model: "sha256:b" } });
    expect([other.scored, other.resumed, other.stale, other.calls]).toEqual([4, 0, 4, 4]);
    const same = await run({ ...options, identity: { model: "sha256:b" } });
    expect([same.scored, same.resumed, same.stale, same.calls]).toEqual([0, 4, 0, 0]);
    const hotter = await run({ ...options, identity: { model: "sha256:b" }, temperature: 0.5 });
    expect([hotter.scored, hotter.resumed, hotter.stale]).toEqual([4, 0, 4]);
  });

  it("fails with a typed error for an unknown method or bad options", async () => {
    await expect(run({ benchmarks: [bench], method: "nope" })).rejects.toThrow(/unknown method "nope"/);
    await expect(run({ benchmarks: [bench], method: "direct", samples: 0 })).rejects.toThrow(
      /samples must be a positive integer/,
    );
  });

  it("accepts new methods through registerMethod", async () => {
    registerMethod("always-paris", {
      description: "answers Paris",
      run: () =>
        Effect.succeed({
          samples: [
            {
              text: "",
              prediction: "Paris",
              format: 1,
              turns: 1,
              tokens: 0,
              operatorCalls: {},
              finishReason: "stop",
            },
          ],
        }),
    });
    expect(methodNames()).toContain("always-paris");
    expect(() =>
      registerMethod("always-paris", { description: "", run: () => Effect.succeed({ samples: [] }) }),
    ).toThrow(/already registered/);
    const { report } = await run({ benchmarks: [bench], method: "always-paris" });
    expect(report.summaries[0]!.em.mean).toBe(0.25);
  });
});

describe("majorityVote", () => {
  it.each([
    [["a", "b", "a"], "a", 2],
    [["The Beatles", "beatles", "Stones"], "The Beatles", 2],
    [["x", "y"], "x", 1],
    [[null, null, "z"], "z", 1],
    [[null], null, 0],
  ])("%j → %s", (predictions, winner, votes) => {
    expect(majorityVote(predictions as Array<string | null>)).toEqual({ prediction: winner, votes });
  });
});

describe("extractAnswer", () => {
  // Evaluation must read answers exactly as the training reward and the environment do: the last
  // answer of the text, stripped of whitespace the way Python's str.strip strips it (the reward's
  // reference), which also removes the separators \x1c–\x1f and \x85 that JavaScript's trim keeps.
  it.each([
    ["<answer> Paris </answer>", "Paris"],
    ["<answer>a</answer> then <answer>b</answer>", "b"],
    ["<answer>\x1cParis\x85</answer>", "Paris"],
    ["<answer>\u00a0Rome\u3000</answer>", "Rome"],
    ["<answer>  </answer>", null],
    ["no answer", null],
  ])("%j → %j", (text, expected) => {
    expect(extractAnswer(text)).toBe(expected);
    expect(rewardAnswer(text) || null).toBe(expected);
    // The environment's turn parser reads the same answer from a turn that ends at </answer>.
    const turn = parseTurn(text.slice(text.lastIndexOf("<answer>")));
    if (expected !== null) expect(turn).toEqual({ _tag: "Answer", answer: expected });
    // And the reward's exact-match score agrees with scoring the extracted answer.
    if (expected !== null) expect(answerScore(text, [expected])).toBe(1);
  });
});
