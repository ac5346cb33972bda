/**
 * `workflow-r1 eval` through the real CLI in a child process: failures are recorded and a run
 * where every question failed exits non-zero; results are reused only under the same model and
 * settings; an empty selection and a missing --model are named; the executor URL comes
 * from WORKFLOW_R1_EXECUTOR_URL; direct answers can come from the executor (the paper's
 * baselines); a run's trained-on datasets are evaluated on their held-out part only.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { createTinyLlama } from "@workflow-r1/gguf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const cli = path.resolve(import.meta.dirname, "../dist/cli.js");
const DATA = path.resolve(import.meta.dirname, "../../../../shared/data/qa");

const run = (args: string[], env: Record<string, string> = {}) =>
  new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], {
      env: { ...process.env, CI: "1", WORKFLOW_R1_EXECUTOR_URL: "", ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });

let dir = "";
let model = "";
const prompts: string[] = [];
const server = createServer(async (req, res) => {
  let body = "";
  for await (const chunk of req) body += chunk;
  if (req.url?.endsWith("/chat/completions")) prompts.push(JSON.parse(body).messages[0].content);
  res.writeHead(200, { "content-type": "application/json" });
  res.end(
    JSON.stringify({
      choices: [
        { index: 0, message: { role: "assistant", content: "<answer>james madison" }, finish_reason: "stop" },
      ],
    }),
  );
});
let url = "";
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-eval-cli-"));
  model = (
    await createTinyLlama({
      path: path.join(dir, "tiny.gguf"),
      vocab: 300,
      dim: 32,
      layers: 1,
      heads: 2,
      kvHeads: 1,
      ffn: 64,
      seed: 3,
    })
  ).path;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  fs.rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!fs.existsSync(DATA))("workflow-r1 eval (CLI)", () => {
  it("records every failure with its message and exits 1 when every question failed", async () => {
    // An executor that answers every request with HTTP 500: every sample fails.
    const broken = createServer((_req, res) => {
      res.writeHead(500, { "content-type": "text/plain" });
      res.end("model crashed");
    });
    await new Promise<void>((resolve) => broken.listen(0, "127.0.0.1", resolve));
    try {
      const out = path.join(dir, "fail");
      const brokenUrl = `http://127.0.0.1:${(broken.address() as AddressInfo).port}/v1`;
      const r = await run(
        [
          "eval",
          "--data",
          DATA,
          "--benchmarks",
          "bamboogle",
          "--method",
          "direct",
          "--answerer",
          "executor",
          "--limit",
          "3",
          "--out",
          out,
        ],
        { WORKFLOW_R1_EXECUTOR_URL: brokenUrl, WORKFLOW_R1_EXECUTOR_MODEL: "executor" },
      );
      expect(r.status, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/every question failed \(3\); first error: .*500/);
      expect(r.stderr).toMatch(/eval: 3 question\(s\) failed; errors:\n {2}- .*500/);
      const records = fs
        .readFileSync(path.join(out, "results.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      expect(records).toHaveLength(3);
      for (const record of records) {
        expect(record.failed).toBe(true);
        expect(record.samples[0].error).toMatch(/500/);
      }
    } finally {
      await new Promise<void>((resolve) => broken.close(() => resolve()));
    }
  }, 120_000);

  it("a workflow prompt that does not fit the context: every question fails with its message, exit 1", async () => {
    // The user's report: EM 0.0, exit 0, `errors 3` without a message and no results.jsonl.
    const out = path.join(dir, "overflow");
    const r = await run(
      [
        "eval",
        "--data",
        DATA,
        "--benchmarks",
        "bamboogle",
        "--method",
        "workflow",
        "--model",
        model,
        "--context-size",
        "256",
        "--threads",
        "1",
        "--limit",
        "3",
        "--out",
        out,
      ],
      { WORKFLOW_R1_EXECUTOR_URL: url, WORKFLOW_R1_EXECUTOR_MODEL: "executor" },
    );
    expect(r.status, r.stderr).toBe(1);
    const lines = r.stderr.trim().split("\n");
    // The typed error, on one line, last.
    expect(lines.at(-1)).toMatch(
      /^workflow-r1: EvaluationError: every question failed \(3\); first error: ContextOverflowError: prompt has \d+ tokens, the context holds \d+ per sequence\. Results in .*results\.jsonl$/,
    );
    expect(r.stderr).toContain("eval: bamboogle / workflow: EM 0.0 F1 0.0 over 3 questions; 3 failed");
    expect(r.stderr).toMatch(/eval: 3 question\(s\) failed; errors:\n {2}- ContextOverflowError: prompt has/);
    expect(r.stderr).toContain("raise --context-size");
    const records = fs
      .readFileSync(path.join(out, "results.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(records.map((x) => x.taskId).sort()).toEqual(["test_0", "test_1", "test_2"]);
    for (const record of records) {
      expect(record.failed).toBe(true);
      expect(record.samples[0].error).toMatch(/^ContextOverflowError: prompt has \d+ tokens/);
    }
    const report = JSON.parse(fs.readFileSync(path.join(out, "report.json"), "utf8"));
    expect(report.summaries[0].errors).toBe(3);
    expect(report.summaries[0].errorMessages[0]).toMatch(/^ContextOverflowError/);
    expect(fs.readFileSync(path.join(out, "report.md"), "utf8")).toMatch(
      /## Errors[\s\S]*bamboogle \/ workflow: 3 question\(s\) failed entirely[\s\S]*ContextOverflowError/,
    );
  }, 120_000);

  it("prints where the results and reports went, keeps raw outputs, and reuses answers only under the same key", async () => {
    const out = path.join(dir, "keys");
    const other = (
      await createTinyLlama({
        path: path.join(dir, "other.gguf"),
        vocab: 300,
        dim: 32,
        layers: 1,
        heads: 2,
        kvHeads: 1,
        ffn: 64,
        seed: 4,
      })
    ).path;
    const args = (m: string, ...extra: string[]) => [
      "eval",
      "--data",
      DATA,
      "--benchmarks",
      "bamboogle",
      "--method",
      "direct",
      "--model",
      m,
      "--limit",
      "2",
      "--threads",
      "1",
      "--max-tokens",
      "16",
      "--out",
      out,
      ...extra,
    ];
    const first = await run(args(model));
    expect(first.status, first.stderr).toBe(0);
    const results = path.join(out, "results.jsonl");
    expect(first.stderr).toContain(`eval: results ${results}\n`);
    expect(first.stderr).toContain(
      `eval: reports ${path.join(out, "report.json")}, ${path.join(out, "report.md")}, ${path.join(out, "report.html")}\n`,
    );
    for (const file of ["results.jsonl", "report.json", "report.md", "report.html"])
      expect(fs.existsSync(path.join(out, file)), file).toBe(true);
    expect(first.stderr).toContain("eval: 2 question(s) answered now, 0 reused");
    // Each sample's raw output is kept next to the extracted answer.
    const records = () =>
      fs
        .readFileSync(results, "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
    for (const record of records()) {
      expect(typeof record.samples[0].text).toBe("string");
      expect(record.samples[0].tokens).toBeGreaterThan(0);
      expect(record.samples[0].text.length).toBeGreaterThan(0);
      expect(record.configKey).toMatch(/^[0-9a-f]{16}$/);
    }

    const same = await run(args(model));
    expect(same.status, same.stderr).toBe(0);
    expect(same.stderr).toContain("eval: 0 question(s) answered now, 2 reused");

    const otherModel = await run(args(other));
    expect(otherModel.status, otherModel.stderr).toBe(0);
    expect(otherModel.stderr).toContain(
      "eval: 2 question(s) answered now, 0 reused from " +
        `${results} (same model and settings); 2 earlier answer(s) there came from another model or settings and were ignored`,
    );
    const hotter = await run(args(model, "--temperature", "0.7"));
    expect(hotter.status, hotter.stderr).toBe(0);
    expect(hotter.stderr).toContain("eval: 2 question(s) answered now, 0 reused");
    expect(new Set(records().map((x) => x.configKey)).size).toBe(3);
    // The report describes the last run's settings.
    const report = JSON.parse(fs.readFileSync(path.join(out, "report.json"), "utf8"));
    expect(report.config.settings.direct.temperature).toBe(0.7);
  }, 120_000);

  it("refuses an empty selection with a clear message and no report", async () => {
    const empty = path.join(dir, "empty-data");
    fs.mkdirSync(path.join(empty, "emptyqa"), { recursive: true });
    fs.writeFileSync(path.join(empty, "emptyqa", "test.jsonl"), "\n");
    const out = path.join(dir, "empty-out");
    const noQuestions = await run([
      "eval",
      "--data",
      empty,
      "--method",
      "direct",
      "--model",
      model,
      "--out",
      out,
    ]);
    expect(noQuestions.status).toBe(1);
    expect(noQuestions.stderr).toMatch(
      /EvaluationError: no questions to evaluate: emptyqa \(.*emptyqa\/test\.jsonl\) has none/,
    );
    expect(fs.existsSync(out)).toBe(false);

    const nothing = path.join(dir, "no-data");
    fs.mkdirSync(nothing);
    const noFiles = await run([
      "eval",
      "--data",
      nothing,
      "--method",
      "direct",
      "--model",
      model,
      "--out",
      out,
    ]);
    expect(noFiles.status).toBe(1);
    expect(noFiles.stderr).toContain(`DatasetError: ${nothing}: no benchmark files (*/*.jsonl)`);

    const limit0 = await run([
      "eval",
      "--data",
      DATA,
      "--method",
      "direct",
      "--model",
      model,
      "--limit",
      "0",
      "--out",
      out,
    ]);
    expect(limit0.status).toBe(1);
    expect(limit0.stderr).toMatch(/--limit <n>' argument '0' is invalid\. expected a positive integer/);
    expect(fs.existsSync(out)).toBe(false);
  }, 120_000);

  it("names a missing --model", async () => {
    const r = await run(["eval", "--data", DATA, "--method", "direct", "--out", path.join(dir, "nomodel")]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("--model is required");
    expect(r.stderr).not.toContain("Cannot read properties");
  });

  it("answers on the executor from WORKFLOW_R1_EXECUTOR_URL (the executor-alone baseline)", async () => {
    const out = path.join(dir, "executor");
    const r = await run(
      [
        "eval",
        "--data",
        DATA,
        "--benchmarks",
        "bamboogle",
        "--method",
        "direct",
        "--answerer",
        "executor",
        "--limit",
        "2",
        "--out",
        out,
      ],
      { WORKFLOW_R1_EXECUTOR_URL: url, WORKFLOW_R1_EXECUTOR_MODEL: "executor" },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(prompts.length).toBeGreaterThanOrEqual(2);
    // Bamboogle's first question is answered "james madison": EM 50 over the first two.
    expect(r.stderr).toContain("eval: bamboogle / direct: EM 50.0");
    expect(r.stderr).toContain(`eval: reports ${path.join(out, "report.json")}`);
  }, 120_000);

  it("evaluates a run's trained-on dataset on its held-out part only", async () => {
    const runDir = path.join(dir, "trained");
    fs.mkdirSync(runDir);
    fs.copyFileSync(model, path.join(runDir, "policy.gguf"));
    fs.writeFileSync(
      path.join(runDir, "config.json"),
      JSON.stringify({ environment: { name: "workflow-r1", options: { trainDatasets: ["nq"] } } }),
    );
    const out = path.join(dir, "overlap");
    const r = await run([
      "eval",
      "--data",
      DATA,
      "--benchmarks",
      "nq,bamboogle",
      "--method",
      "direct",
      "--model",
      path.join(runDir, "policy.gguf"),
      "--limit",
      "1",
      "--threads",
      "1",
      "--out",
      out,
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(
      `eval: ${runDir} trained on nq: evaluating only the held-out part of nq (727 of 3610 questions)`,
    );
    const report = JSON.parse(fs.readFileSync(path.join(out, "report.json"), "utf8"));
    expect(report.config.trainOverlap).toEqual(["nq"]);
    expect(report.summaries.map((s: { benchmark: string }) => s.benchmark)).toEqual([
      "nq (held-out)",
      "bamboogle",
    ]);
  }, 120_000);
});
