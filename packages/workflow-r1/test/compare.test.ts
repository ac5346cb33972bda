/**
 * `workflow-r1 compare` with child processes: every (algorithm, seed) run trains for real through
 * `dist/cli.js train`, writes its own resolved config and log, and the table is read back from the
 * runs' metrics. Also checks the step-0 evaluation row (the baseline before any RL step).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { runCompare } from "../src/train/compare.js";
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
    expect(markdown).toMatch(/^\| algorithm \| final accuracy/);
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
    await expect(
      runCompare({
        algorithms: ["gsspo"],
        seeds: 2,
        out,
        threshold: 0.5,
        parallel: 2,
        overrides: { ...base, environment: { name: "no-such-environment-package", options: {} } },
      }),
    ).rejects.toThrow(/gsspo seed \d failed \(exit \d+\); see .*gsspo-seed\d\.log/);
  }, 120_000);
});
