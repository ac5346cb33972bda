/**
 * `workflow-r1 compare` with child processes: every (algorithm, seed) run trains for real through
 * `dist/cli.js train`, writes its own resolved config and log, and the table is read back from the
 * runs' metrics. Also checks the step-0 evaluation row (the baseline before any RL step).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { runCompare } from "../src/index.js";
import { smallRun } from "./fixtures/settings.js";

describe("workflow-r1 compare (child runs)", () => {
  it("trains each algorithm and seed in parallel children and tabulates their metrics", async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-compare-"));
    const { out: _unused, ...base } = smallRun(out, 2);
    const table = await runCompare({
      algorithms: ["grpo", "gsspo"],
      seeds: 1,
      out,
      threshold: 0.3,
      parallel: 2,
      overrides: { ...base, evalTasks: 4, evalEvery: 1 },
    });

    expect(table.map((row) => row.algorithm)).toEqual(["grpo", "gsspo"]);
    for (const algorithm of ["grpo", "gsspo"]) {
      const run = path.join(out, `${algorithm}-seed1`);
      const config = JSON.parse(
        fs.readFileSync(path.join(out, "configs", `${algorithm}-seed1.json`), "utf8"),
      );
      expect(config.algorithm.name).toBe(algorithm);
      expect(config.out).toBe(run);
      expect(fs.readFileSync(`${run}.log`, "utf8")).toContain("[train] done: 2 steps");
      const rows = fs
        .readFileSync(path.join(run, "metrics.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line));
      expect(rows.map((r) => r.step)).toEqual([0, 1, 2]);
      // Step 0 is the evaluation of the starting policy only; training keys start at step 1.
      expect(rows[0]["eval/accuracy"]).toBeTypeOf("number");
      expect(rows[0]["reward/mean"]).toBeUndefined();
      const row = table.find((r) => r.algorithm === algorithm)!;
      expect(row.finalAccuracy).toEqual([rows[2]["eval/accuracy"]]);
    }
    const markdown = fs.readFileSync(path.join(out, "compare.md"), "utf8");
    expect(markdown).toMatch(/^\| algorithm \| final held-out accuracy, mean \[95% CI\]/);
    expect(markdown).toContain("| grpo |");
    expect(markdown).toContain("| gsspo |");

    // Re-tabulating the same runs trains nothing and reads the same metrics.
    const runLog = path.join(out, "gsspo-seed1", "metrics.jsonl");
    const before = fs.statSync(runLog).mtimeMs;
    const again = await runCompare({
      algorithms: ["grpo", "gsspo"],
      seeds: 1,
      out,
      threshold: 0.3,
      tabulateOnly: true,
    });
    expect(again).toEqual(table);
    expect(fs.statSync(runLog).mtimeMs).toBe(before);
    await expect(
      runCompare({ algorithms: ["gspo"], seeds: 1, out, threshold: 0.3, tabulateOnly: true }),
    ).rejects.toThrow(/--tabulate-only: no metrics.jsonl in .*gspo-seed1/);
  }, 400_000);

  it("reports which run failed and where its log is", async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-compare-fail-"));
    const { out: _unused, ...base } = smallRun(out, 1);
    const failure = runCompare({
      algorithms: ["gsspo"],
      seeds: 2,
      out,
      threshold: 0.5,
      parallel: 2,
      overrides: { ...base, environment: { name: "no-such-environment-package", options: {} } },
    });
    await expect(failure).rejects.toThrow(/gsspo seed \d failed \(exit \d+\); see .*gsspo-seed\d\.log/);
    // A typed failure naming the run.
    await expect(failure).rejects.toMatchObject({ _tag: "CompareRunError", algorithm: "gsspo" });
  }, 120_000);
});

describe("workflow-r1 compare with a shared warm start", () => {
  const arith = (out: string) => ({
    out,
    steps: 2,
    evalTasks: 4,
    evalEvery: 1,
    environment: { name: "arith", options: { steps: 1 } },
    model: {
      tiny: { dim: 32, layers: 1, heads: 2, kvHeads: 1, ffn: 64, context: 512 },
      contextSize: 512,
      threads: 1,
    },
    warmStart: { steps: 20, batchSize: 8, learningRate: 0.01 },
    rollout: {
      tasksPerStep: 2,
      groupSize: 4,
      maxConcurrentEpisodes: 8,
      maxTurns: 3,
      maxTokens: 72,
      maxTokensPerTurn: 24,
    },
    learner: { learningRate: 0.003, threads: 1 },
  });
  const metrics = (run: string) =>
    fs
      .readFileSync(path.join(run, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, number>)
      // Timings differ between runs; everything else must not.
      .map((row) =>
        Object.fromEntries(Object.entries(row).filter(([k]) => !/^(time|throughput|rollout)\//.test(k))),
      );

  it("warm-starts once per seed and trains exactly as separate runs would, with settings per entry", async () => {
    const shared = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-compare-shared-"));
    const separate = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-compare-separate-"));
    const entries = ["gsspo", "gsspo@clipLow=0.2@clipHigh=0.2@aggregation=token-mean"];
    const table = await runCompare({
      algorithms: entries,
      seeds: 1,
      out: shared,
      threshold: 0.5,
      overrides: arith(shared),
    });
    await runCompare({
      algorithms: entries,
      seeds: 1,
      out: separate,
      threshold: 0.5,
      shareWarmStart: false,
      overrides: arith(separate),
    });
    expect(fs.existsSync(path.join(shared, "warm-start-seed1", "checkpoints", "step-000000"))).toBe(true);
    expect(fs.existsSync(path.join(separate, "warm-start-seed1"))).toBe(false);
    const dirs = ["gsspo-seed1", "gsspo_clipLow_0.2_clipHigh_0.2_aggregation_token-mean-seed1"];
    for (const dir of dirs)
      expect(metrics(path.join(shared, dir))).toEqual(metrics(path.join(separate, dir)));
    // The entry's settings reached the run.
    const config = JSON.parse(fs.readFileSync(path.join(shared, dirs[1]!, "config.json"), "utf8"));
    expect(config.algorithm).toMatchObject({
      name: "gsspo",
      clipLow: 0.2,
      clipHigh: 0.2,
      aggregation: "token-mean",
    });
    expect(table.map((r) => r.algorithm)).toEqual(entries);
    for (const row of table) {
      expect(row.curveArea).toHaveLength(1);
      expect(row.clipFraction).toHaveLength(1);
    }
    const markdown = fs.readFileSync(path.join(shared, "compare.md"), "utf8");
    expect(markdown).toContain("final held-out accuracy, mean [95% CI]");
    expect(markdown).toContain("clip fraction");
  }, 600_000);

  it("--resume keeps finished runs and continues a stopped one from its checkpoint", async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-compare-resume-"));
    const options = {
      algorithms: ["gsspo", "grpo"],
      seeds: 1,
      out,
      threshold: 0.5,
      overrides: { ...arith(out), checkpointEvery: 1 },
    };
    const table = await runCompare(options);
    const kept = path.join(out, "gsspo-seed1", "summary.json");
    const keptAt = fs.statSync(kept).mtimeMs;
    // The grpo run "stopped" after its step-1 checkpoint: no summary, step 2's metrics lost.
    const stopped = path.join(out, "grpo-seed1");
    fs.rmSync(path.join(stopped, "summary.json"));
    const rows = fs.readFileSync(path.join(stopped, "metrics.jsonl"), "utf8").trim().split("\n");
    fs.writeFileSync(
      path.join(stopped, "metrics.jsonl"),
      `${rows.filter((r) => JSON.parse(r).step < 2).join("\n")}\n`,
    );
    const steps = fs.readdirSync(path.join(stopped, "checkpoints")).filter((d) => d.startsWith("step-"));
    expect(steps).toContain("step-000001");
    fs.rmSync(path.join(stopped, "checkpoints", "step-000002"), { recursive: true });
    fs.writeFileSync(path.join(stopped, "checkpoints", "latest"), "step-000001");
    // A marker a fresh start of the run (which clears its directory) would remove.
    fs.writeFileSync(path.join(stopped, "marker"), "");
    const resumed = await runCompare({ ...options, resume: true });
    expect(fs.existsSync(path.join(stopped, "marker"))).toBe(true);
    expect(fs.statSync(kept).mtimeMs).toBe(keptAt);
    expect(fs.existsSync(path.join(stopped, "summary.json"))).toBe(true);
    // The resumed run ends where the uninterrupted one did.
    expect(resumed).toEqual(table);
  }, 600_000);
});
