/**
 * `workflow-r1 eval` through the real CLI in a child process: failures are recorded and a run
 * where every question failed exits non-zero; a missing --model is named; the executor URL comes
 * from WORKFLOW_R1_EXECUTOR_URL; direct answers can come from the executor (the paper's
 * baselines); a run's trained-on datasets are evaluated on their held-out part only.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { createTinyLlama } from "@workflow-r1/policy";
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
