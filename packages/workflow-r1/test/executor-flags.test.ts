/**
 * The executor flags of `workflow-r1 train`: `--executor-local <gguf>` is
 * `environment.options.executor: {kind: local, model}` (and reaches env-qa's plugin, which refuses a
 * missing GGUF by its option path before any rollout); `--executor-url` / `--executor-model` set the
 * HTTP executor's fields; the two kinds are exclusive. `eval --executor-local` reaches eval's local
 * executor the same way.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Effect, Exit } from "effect";
import { describe, expect, it } from "vitest";
import { main, overridesFrom } from "../src/program.js";

describe("train's executor flags", () => {
  it("--executor-local sets the local kind and its model; --executor-url / --executor-model the HTTP fields", () => {
    expect(overridesFrom({ executorLocal: "models/exec.gguf" })).toEqual({
      environment: { options: { executor: { kind: "local", model: "models/exec.gguf" } } },
    });
    expect(overridesFrom({ executorUrl: "http://127.0.0.1:8000/v1", executorModel: "qwen" })).toEqual({
      environment: { options: { executor: { baseUrl: "http://127.0.0.1:8000/v1", model: "qwen" } } },
    });
    // Merged with --set: the flag's fields beside the others.
    expect(overridesFrom({ set: ["environment.options.executor.threads=2"], executorLocal: "true" })).toEqual(
      { environment: { options: { executor: { threads: 2, kind: "local", model: "true" } } } },
    );
    expect(() => overridesFrom({ executorLocal: "m.gguf", executorUrl: "http://h/v1" })).toThrow(
      /--executor-local and --executor-url are exclusive/,
    );
    expect(() => overridesFrom({ executorLocal: "m.gguf", executorModel: "qwen" })).toThrow(
      /--executor-model names an endpoint's model/,
    );
  });

  it("reaches the workflow-r1 environment: a missing GGUF is refused by its option path before any step", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-executor-flags-"));
    const data = path.join(dir, "qa");
    fs.mkdirSync(path.join(data, "nq"), { recursive: true });
    fs.writeFileSync(
      path.join(data, "nq", "train.jsonl"),
      `${JSON.stringify({ id: "1", question: "What is the capital of France?", golden_answers: ["Paris"] })}\n`,
    );
    const missing = path.join(dir, "absent.gguf");
    const out = path.join(dir, "run");
    try {
      const exit = await Effect.runPromiseExit(
        main([
          "node",
          "workflow-r1",
          "train",
          "--env",
          "workflow-r1",
          "--executor-local",
          missing,
          "--set",
          `environment.options.dataDir=${data}`,
          "--set",
          "environment.options.trainDatasets=[nq]",
          "--set",
          "environment.options.evalDatasets=[nq]",
          "--steps",
          "1",
          "--out",
          out,
        ]),
      );
      expect(Exit.isFailure(exit)).toBe(true);
      expect(JSON.stringify(Exit.isFailure(exit) && exit.cause)).toContain(
        `environment.options.executor.model: the executor model ${missing} does not exist`,
      );
      expect(
        fs.existsSync(path.join(out, "metrics.jsonl")) &&
          fs.readFileSync(path.join(out, "metrics.jsonl"), "utf8").trim(),
      ).toBeFalsy();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it("eval's --executor-local reaches eval's local executor, refused by the flag's name when missing", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-executor-flags-"));
    const missing = path.join(dir, "absent.gguf");
    const data = path.join(dir, "qa");
    fs.mkdirSync(path.join(data, "bamboogle"), { recursive: true });
    fs.writeFileSync(
      path.join(data, "bamboogle", "test.jsonl"),
      `${JSON.stringify({ id: "1", question: "What is the capital of France?", golden_answers: ["Paris"] })}\n`,
    );
    const out = path.join(dir, "out");
    try {
      const argv = ["node", "workflow-r1", "eval", "--data", data, "--benchmarks", "bamboogle", "--out", out];
      const exit = await Effect.runPromiseExit(
        main([
          ...argv,
          "--method",
          "direct",
          "--answerer",
          "executor",
          "--executor-local",
          missing,
          "--limit",
          "1",
        ]),
      );
      expect(JSON.stringify(Exit.isFailure(exit) && exit.cause)).toContain(
        `--executor-local: the executor model ${missing} does not exist`,
      );
      const both = await Effect.runPromiseExit(
        main([
          ...argv,
          "--method",
          "direct",
          "--answerer",
          "executor",
          "--executor-local",
          missing,
          "--executor-url",
          "http://127.0.0.1:1/v1",
        ]),
      );
      expect(JSON.stringify(Exit.isFailure(both) && both.cause)).toContain(
        "--executor-local and --executor-url are exclusive",
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
