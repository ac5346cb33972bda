import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Environment } from "@workflow-r1/core";
import { Effect, Exit, Schema } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  OPERATOR_NAMES,
  PAPER_OPERATORS,
  WorkflowR1PluginOptionsSchema,
  workflowR1Plugin,
} from "../src/index.js";
import { json, startServer, type TestServer } from "./executors-server.js";

const DATA = "/work/shared/data/qa";
let tmp = "";
let corpusPath = "";
/** The executor endpoint: the plugin checks it (GET /models) when it builds the environment. */
let server: TestServer;
let executor: { baseUrl: string; model: string; apiKey: string };
beforeAll(async () => {
  server = await startServer((_r, _i, res) => json(res, 200, { object: "list", data: [{ id: "executor" }] }));
  executor = { baseUrl: `${server.url}/v1`, model: "executor", apiKey: "k" };
  tmp = await mkdtemp(path.join(tmpdir(), "env-qa-plugin-"));
  corpusPath = path.join(tmp, "corpus.jsonl");
  await writeFile(
    corpusPath,
    [
      { id: "0", contents: '"Hamlet"\nHamlet is a tragedy written by William Shakespeare.' },
      { id: "1", contents: '"Paris"\nParis is the capital of France.' },
    ]
      .map((d) => JSON.stringify(d))
      .join("\n"),
  );
});
afterAll(async () => {
  await server.close();
  await rm(tmp, { recursive: true, force: true });
});

describe("workflowR1Plugin", () => {
  it("builds the environment from plain options and searches the BM25 corpus", async () => {
    const step = await Effect.runPromise(
      Effect.gen(function* () {
        const env = yield* Environment;
        const episode = yield* env.reset({
          id: "q",
          question: "Who wrote Hamlet?",
          goldenAnswers: ["Shakespeare"],
        });
        return yield* episode.step("<think>look</think><tool>Search: Hamlet tragedy</tool>");
      }).pipe(
        Effect.provide(
          workflowR1Plugin.layer({ executor, corpusPath, operatorBudget: 3, operators: [...OPERATOR_NAMES] }),
        ),
      ),
    );
    expect(step._tag === "Observation" && step.observation).toMatch(/^<info>Doc 1 \(Title: Hamlet\)/);
    expect(server.requests.map((r) => r.url)).toEqual(["/v1/models"]);
  });

  it("is closed-book by default: the paper's seven operators, no retriever needed", async () => {
    const prompt = await Effect.runPromise(
      Effect.gen(function* () {
        const env = yield* Environment;
        const episode = yield* env.reset({
          id: "q",
          question: "Who wrote Hamlet?",
          goldenAnswers: ["Shakespeare"],
        });
        return episode.messages.map((m) => m.content).join("\n");
      }).pipe(Effect.provide(workflowR1Plugin.layer({ executor }))),
    );
    for (const name of PAPER_OPERATORS) expect(prompt).toContain(`<tool>${name}:`);
    expect(prompt).not.toContain("Search");
  });

  it("exports its options as a Schema: a misspelt option is refused by name", () => {
    expect(workflowR1Plugin.optionsSchema).toBe(WorkflowR1PluginOptionsSchema);
    const decode = Schema.decodeUnknownSync(WorkflowR1PluginOptionsSchema, { onExcessProperty: "error" });
    // The paper preset's options, and every option the plugin reads.
    const options = {
      dataDir: "data/qa",
      trainDatasets: ["nq", "hotpotqa"],
      evalDatasets: ["nq", "hotpotqa", "bamboogle"],
      operatorBudget: 20,
      operators: ["AnswerGenerate", "Search"],
      executor: { baseUrl: "http://127.0.0.1:1/v1", model: "m", temperature: 0 },
      checkExecutor: false,
      retrieverUrl: "http://127.0.0.1:2/retrieve",
      trainTasks: 8,
      evalTasks: 4,
      heldOutFraction: 0.2,
      maxObservationChars: 2048,
      searchTopK: 3,
    };
    expect(decode(options)).toEqual(options);
    expect(() => decode({ trainDataset: ["nq"] })).toThrow(/trainDataset/);
    expect(() => decode({ operatorBudget: "20" })).toThrow(/operatorBudget/);
  });

  it("names the missing or bad option", async () => {
    const noRetriever = await Effect.runPromiseExit(
      Effect.asVoid(
        Environment.pipe(
          Effect.provide(workflowR1Plugin.layer({ executor, operators: [...OPERATOR_NAMES] })),
        ),
      ),
    );
    // Search opted in without a retriever.
    expect(Exit.isFailure(noRetriever) && JSON.stringify(noRetriever.cause)).toContain("retrieverUrl");
    const noData = await Effect.runPromiseExit(workflowR1Plugin.tasks({}, "train", 1));
    expect(Exit.isFailure(noData) && JSON.stringify(noData.cause)).toContain("dataDir");
  });

  it.skipIf(!existsSync(DATA))("loads seeded, shuffled tasks from the QA data in place", async () => {
    const a = await Effect.runPromise(workflowR1Plugin.tasks({ dataDir: DATA, evalTasks: 20 }, "eval", 3));
    const b = await Effect.runPromise(workflowR1Plugin.tasks({ dataDir: DATA, evalTasks: 20 }, "eval", 3));
    const c = await Effect.runPromise(workflowR1Plugin.tasks({ dataDir: DATA, evalTasks: 20 }, "eval", 4));
    expect(a).toHaveLength(20);
    expect(b).toEqual(a);
    expect(c.map((t) => t.id)).not.toEqual(a.map((t) => t.id));
    expect(a.every((t) => (t.goldenAnswers?.length ?? 0) > 0)).toBe(true);
    const all = await Effect.runPromise(workflowR1Plugin.tasks({ dataDir: DATA }, "eval", 3));
    expect(all).toHaveLength(125); // bamboogle/test
    const bad = await Effect.runPromiseExit(
      workflowR1Plugin.tasks({ dataDir: DATA, evalDatasets: ["nope"] }, "eval", 3),
    );
    expect(Exit.isFailure(bad) && JSON.stringify(bad.cause)).toContain("evalDatasets");
  });

  it.skipIf(!existsSync(DATA))("never shares a question between training and evaluation", async () => {
    const options = { dataDir: DATA, evalDatasets: ["nq", "bamboogle"] };
    const train = await Effect.runPromise(workflowR1Plugin.tasks(options, "train", 1));
    const evaluation = await Effect.runPromise(workflowR1Plugin.tasks(options, "eval", 2));
    // nq and hotpotqa train parts, each file once (hotpotqa/dev only, not also dev.sample500).
    expect(train).toHaveLength(2883 + 5919);
    const key = (t: { id: string; metadata?: Readonly<Record<string, unknown>> }) =>
      `${t.metadata?.["dataset"]}:${t.id}`;
    expect(new Set(train.map(key)).size).toBe(train.length);
    // nq is trained on: only its held-out part is evaluated; bamboogle is not: all of it.
    expect(evaluation).toHaveLength(727 + 125);
    const trained = new Set(train.map(key));
    expect(evaluation.filter((t) => trained.has(key(t)))).toEqual([]);
    const bad = await Effect.runPromiseExit(
      workflowR1Plugin.tasks({ ...options, heldOutFraction: 1.5 }, "train", 1),
    );
    expect(Exit.isFailure(bad) && JSON.stringify(bad.cause)).toContain("heldOutFraction");
  });
});
