/**
 * The local executor (`executor.kind: "local"`): option decoding and refusals (no model needed),
 * then the paper's seven operators and one whole episode on a real GGUF (SmolLM2-135M-Instruct)
 * run in-process through llama.cpp on the CPU.
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Environment, type EnvironmentShape, type StepResult, type Task } from "@workflow-r1/core";
import { realModelPath } from "@workflow-r1/gguf";
import { Effect, Exit, ManagedRuntime, Schema } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  decodeExecutorOptions,
  executorStatsOf,
  LocalModelExecutor,
  localSamplingOptions,
  PAPER_OPERATORS,
  WorkflowR1PluginOptionsSchema,
  workflowR1Plugin,
} from "../src/index.js";

let tmp = "";
let notGguf = "";
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), "env-qa-local-model-"));
  notGguf = path.join(tmp, "model.gguf");
  await writeFile(notGguf, "this is not a model\n");
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** The failure message of an Effect (as the CLI prints it), or "" when it succeeded. */
const failureOf = async <A, E>(effect: Effect.Effect<A, E>): Promise<string> => {
  const exit = await Effect.runPromiseExit(effect);
  return Exit.isFailure(exit) ? JSON.stringify(exit.cause) : "";
};

/** Building the environment from these options fails with that message ("" = it was built). */
const buildFailure = (options: Readonly<Record<string, unknown>>) =>
  failureOf(Effect.scoped(Effect.asVoid(Environment.pipe(Effect.provide(workflowR1Plugin.layer(options))))));

describe("executor option decoding", () => {
  it("samples as an OpenAI server would: temperature 0 greedy, above 0 at that temperature (LocalExecutor stays greedy by default)", () => {
    const messages = [{ role: "user" as const, content: "Hi" }];
    expect(localSamplingOptions({ messages, temperature: 0.7 }, { sampling: "request" })).toEqual({
      temperature: 0.7,
      topK: 0,
    });
    expect(localSamplingOptions({ messages, temperature: 0 }, { sampling: "request" })).toEqual({
      temperature: 0,
      topK: 1,
    });
    expect(localSamplingOptions({ messages }, { sampling: "request" }).topK).toBe(1);
    expect(localSamplingOptions({ messages, temperature: 0.7 }, {})).toEqual({ temperature: 0, topK: 1 });
  });

  it("reads the kind: none or http is the HTTP executor (configs before the local one), local the GGUF", async () => {
    const http = await Effect.runPromise(decodeExecutorOptions({ baseUrl: "http://h/v1", model: "m" }));
    expect(http).toEqual({ kind: "http", options: { baseUrl: "http://h/v1", model: "m" } });
    expect((await Effect.runPromise(decodeExecutorOptions(undefined))).kind).toBe("http");
    expect((await Effect.runPromise(decodeExecutorOptions({ kind: "http" }))).kind).toBe("http");
    const local = {
      kind: "local",
      model: "m.gguf",
      contextSize: 2048,
      threads: 2,
      sequences: 2,
      maxTokens: 64,
    };
    expect(await Effect.runPromise(decodeExecutorOptions(local))).toEqual({ kind: "local", options: local });
  });

  it("refuses a bad kind, a missing model and an unknown field, naming the option path", async () => {
    const fail = (raw: unknown) => Effect.runPromise(Effect.flip(decodeExecutorOptions(raw)));
    const badKind = await fail({ kind: "vllm", model: "m" });
    expect(badKind.field).toBe("environment.options.executor.kind");
    expect(badKind.message).toBe(
      'environment.options.executor.kind: expected one of "http", "local", got "vllm"',
    );
    const noModel = await fail({ kind: "local" });
    expect(noModel.field).toBe("environment.options.executor.model");
    expect(noModel.message).toMatch(/^environment\.options\.executor\.model: Missing key/);
    // An HTTP field on a local executor, and a misspelt HTTP field.
    const httpField = await fail({ kind: "local", model: "m.gguf", baseUrl: "http://h/v1" });
    expect(httpField.message).toMatch(
      /^environment\.options\.executor\.baseUrl: unknown option for a local executor; expected one of kind, model, contextSize/,
    );
    const typo = await fail({ baseUrl: "http://h/v1", modle: "m" });
    expect(typo.message).toMatch(
      /^environment\.options\.executor\.modle: unknown option for an http executor/,
    );
    const values = await fail({ kind: "local", model: "m.gguf", threads: 0, gpu: "metal" });
    expect(values.message).toContain(
      "environment.options.executor.threads: Expected a value greater than or equal to 1",
    );
    expect(values.message).toContain('environment.options.executor.gpu: Expected "auto" | "cuda" | "vulkan"');
    expect((await fail("local")).message).toMatch(/^environment\.options\.executor: expected an object/);
  });

  it("is the plugin's optionsSchema field: the trainer refuses a bad executor option before the run", () => {
    const decode = Schema.decodeUnknownSync(WorkflowR1PluginOptionsSchema, { onExcessProperty: "error" });
    expect(() => decode({ executor: { kind: "local" } })).toThrow(/environment\.options\.executor\.model/);
    expect(() => decode({ executor: { kind: "locale", model: "m" } })).toThrow(/executor\.kind/);
    const ok = { executor: { kind: "local", model: "m.gguf", temperature: 0 }, operatorBudget: 3 };
    expect(decode(ok)).toEqual(ok);
  });

  it("refuses a missing or non-GGUF model file by name before loading anything", async () => {
    const missing = path.join(tmp, "absent.gguf");
    const noFile = await buildFailure({ executor: { kind: "local", model: missing } });
    expect(noFile).toContain(
      `environment.options.executor.model: the executor model ${missing} does not exist`,
    );
    const text = await buildFailure({ executor: { kind: "local", model: notGguf } });
    expect(text).toContain(
      `environment.options.executor.model: the executor model ${notGguf} is not a GGUF file`,
    );
    const dir = await buildFailure({ executor: { kind: "local", model: tmp } });
    expect(dir).toContain(`${tmp} is not a file`);
    // A reply longer than the context.
    const tooLong = await buildFailure({
      executor: { kind: "local", model: notGguf, contextSize: 512, maxTokens: 1024 },
    });
    expect(tooLong).toContain("environment.options.executor.maxTokens: 1024 tokens per reply");
    // Decoding comes first: an unknown field is refused even on a missing file.
    expect(await buildFailure({ executor: { kind: "local", model: missing, url: "x" } })).toContain(
      "environment.options.executor.url: unknown option",
    );
  });
});

// ───────────────────────────── on a real model ─────────────────────────────

const DATA = "/work/shared/data/qa";
/**
 * Small: a 2048-token context, short replies, one try per call, one CPU thread (on a busy 2-core
 * machine two threads ran the suite ~7x slower: llama.cpp's threads wait for each other).
 */
const localExecutor = () => ({
  kind: "local" as const,
  model: realModelPath("smollm2"),
  contextSize: 2048,
  sequences: 2,
  threads: 1,
  maxTokens: 48,
  attempts: 1,
});

describe("the local executor on SmolLM2-135M-Instruct (CPU)", () => {
  let runtime: ManagedRuntime.ManagedRuntime<Environment, unknown>;
  let dataDir = DATA;
  const env = (): Promise<EnvironmentShape> =>
    runtime.runPromise(
      Effect.gen(function* () {
        return yield* Environment;
      }),
    );
  beforeAll(async () => {
    // The shared QA data when it is here; otherwise a one-question FlashRAG folder of the same layout.
    if (!existsSync(path.join(DATA, "bamboogle"))) {
      dataDir = path.join(tmp, "qa");
      await mkdir(path.join(dataDir, "bamboogle"), { recursive: true });
      await writeFile(
        path.join(dataDir, "bamboogle", "test.jsonl"),
        `${JSON.stringify({ id: "test_0", question: "What is the capital of France?", golden_answers: ["Paris"] })}\n`,
      );
    }
    runtime = ManagedRuntime.make(
      workflowR1Plugin.layer({ executor: localExecutor(), operatorBudget: 10, dataDir }),
    );
    await env();
  }, 120_000);
  afterAll(async () => {
    await runtime?.dispose();
  });

  const run = <A, E>(effect: Effect.Effect<A, E>) => runtime.runPromise(effect);
  const question = "What is the capital of France?";
  const inputs: Readonly<Record<string, string>> = {
    AnswerGenerate: question,
    MultiAnswerGenerate: question,
    ScEnsemble: `<query>${question}</query><solution>Paris</solution><solution>Paris</solution><solution>Lyon</solution>`,
    Review: `<question>${question}</question><solution>The capital of France is Paris.</solution>`,
    Revise: `<question>${question}</question><solution>Lyon</solution><feedback>The capital of France is Paris, not Lyon.</feedback>`,
    PromptOptimizer: "capital france?",
    Custom: `<task>${question}</task><instruction>Answer in one word.</instruction>`,
  };
  /** Executor calls one call of each operator makes (attempts 1): MultiAnswerGenerate samples three. */
  const callsOf = (name: string) => (name === "MultiAnswerGenerate" ? 3 : 1);

  it("runs each of the seven closed-book operators: a non-empty <info> observation, no failed call", async () => {
    const environment: EnvironmentShape = await env();
    const episode = await run(environment.reset({ id: "ops", question, goldenAnswers: ["Paris"] }));
    expect(PAPER_OPERATORS).toEqual(Object.keys(inputs));
    const timings: Record<string, number> = {};
    for (const name of PAPER_OPERATORS) {
      const before = executorStatsOf(environment)!;
      const started = Date.now();
      const step: StepResult = await run(
        episode.step(`<think>use ${name}</think><tool>${name}: ${inputs[name]}</tool>`),
      );
      timings[name] = Date.now() - started;
      const after = executorStatsOf(environment)!;
      expect(step._tag, name).toBe("Observation");
      if (step._tag !== "Observation") continue;
      const [call] = step.operatorCalls;
      expect(call?.operator, name).toBe(name);
      expect(call?.error, `${name}: ${call?.error}`).toBeUndefined();
      const body = /^<info>([\s\S]*)<\/info>\s*$/.exec(step.observation)?.[1]?.trim() ?? "";
      expect(body, `${name}: ${step.observation}`).not.toBe("");
      expect(body).not.toMatch(/^Error: operator/);
      // It went through the executor, which answered every time.
      expect(after.calls - before.calls, name).toBe(callsOf(name));
      expect(after.failures - before.failures, name).toBe(0);
      if (name === "MultiAnswerGenerate")
        expect(body).toMatch(/^\[Answer 1\][\s\S]+\[Answer 2\][\s\S]+\[Answer 3\]/);
    }
    expect(executorStatsOf(environment)?.url).toBe(`local:${realModelPath("smollm2")}`);
    console.log("local executor, ms per operator step:", JSON.stringify(timings));
  }, 300_000);

  it("plays one whole episode on a task loaded from dataDir: reset, an operator call, an answer, a reward", async () => {
    const environment = await env();
    const [task] = (await run(
      workflowR1Plugin.tasks({ dataDir, evalDatasets: ["bamboogle"], evalTasks: 1 }, "eval", 1),
    )) as ReadonlyArray<Task>;
    expect(task?.goldenAnswers?.length).toBeGreaterThan(0);
    const episode = await run(environment.reset(task!));
    expect(episode.messages.map((m) => m.content).join("\n")).toContain(task!.question);
    const observed = await run(
      episode.step(`<think>Let me ask the executor.</think>\n<tool>AnswerGenerate: ${task!.question}</tool>`),
    );
    expect(observed._tag).toBe("Observation");
    expect(observed._tag === "Observation" && observed.observation).toMatch(
      /^<info>[\s\S]*\S[\s\S]*<\/info>/,
    );
    expect(observed.operatorCalls[0]?.error).toBeUndefined();
    const golden = task!.goldenAnswers![0]!;
    const done = await run(episode.step(`<think>The answer is known.</think>\n<answer>${golden}</answer>`));
    expect(done._tag).toBe("Done");
    if (done._tag !== "Done") return;
    expect(done.finishReason).toBe("answer");
    // The golden answer scores 1, and the format (think, a tool call, an answer) costs nothing.
    expect(done.rewardParts["answer"]).toBe(1);
    expect(done.rewardParts["format"]).toBe(0);
    expect(done.reward).toBe(1);
    expect(done.rewardParts["executorCalls"]).toBe(1);
    expect(done.rewardParts["executorFailures"]).toBe(0);
  }, 120_000);
});

describe("LocalModelExecutor's scope", () => {
  it("frees the model when its scope closes: a later call fails with a typed error, not a crash", async () => {
    const executor = await Effect.runPromise(
      Effect.scoped(
        LocalModelExecutor.make({
          model: realModelPath("smollm2"),
          contextSize: 256,
          maxTokens: 8,
          threads: 1,
        }),
      ),
    );
    expect(executor.label).toBe(`local:${realModelPath("smollm2")}`);
    const after = await Effect.runPromise(
      Effect.flip(executor.complete({ messages: [{ role: "user", content: "Hi" }], maxTokens: 4 })),
    );
    expect(after._tag).toBe("ExecutorHttpError");
    expect(after.message).toContain("closed (the scope that loaded its model has ended)");
  }, 60_000);
});
