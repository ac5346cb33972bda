/**
 * A full WorkflowR1Env episode driven by scripted agent turns, with the real HttpExecutor talking to
 * a deterministic OpenAI-compatible server on 127.0.0.1 and the real BM25 retriever.
 */
import { Environment, type EpisodeOutcome, type StepResult, type Task } from "@workflow-r1/core";
import { Effect, Layer } from "effect";
import { afterEach, describe, expect, it } from "vitest";
import { Bm25Retriever, HttpExecutor, OPERATOR_NAMES, WorkflowR1Env } from "../src/index.js";
import { chatAnswer, json, type Recorded, startServer, type TestServer } from "./executors-server.js";

const SECRET = "sk-episode-SECRET-42";
const task: Task = {
  id: "test_0",
  question: "Who wrote the play Hamlet?",
  goldenAnswers: ["William Shakespeare", "Shakespeare"],
  metadata: { dataset: "synthetic", split: "test" },
};
const corpus = [
  { id: "d1", contents: '"Hamlet"\nHamlet is a tragedy written by William Shakespeare around 1600.' },
  { id: "d2", contents: '"Macbeth"\nMacbeth is a tragedy about a Scottish general.' },
  { id: "d3", contents: '"Paris"\nParis is the capital of France.' },
];

type Body = {
  model: string;
  messages: { role: string; content: string }[];
  temperature?: number;
  max_tokens?: number;
};
const promptOf = (r: Recorded) => (r.body as Body).messages.map((m) => m.content).join("\n");

/**
 * The executor LLM, deterministic in the prompt: AnswerGenerate prompts first get a reply without
 * the required tags, and only the retry that carries the operator's hint gets a well-formed one.
 */
const executorServer = () =>
  startServer((req, _i, res) => {
    const prompt = promptOf(req);
    if (prompt.includes("Check whether the solution")) {
      return json(res, 200, chatAnswer("<think>Hamlet is by Shakespeare.</think><verdict>correct</verdict>"));
    }
    if (prompt.includes("Question: Who wrote the play Hamlet?")) {
      const hinted = prompt.includes("did not contain a valid <answer>");
      return json(
        res,
        200,
        chatAnswer(
          hinted
            ? "<think>The passage says Hamlet was written by William Shakespeare.</think>\n<answer>William Shakespeare</answer>"
            : "I believe it was Shakespeare.",
        ),
      );
    }
    return json(res, 400, { error: `unexpected prompt: ${prompt.slice(0, 80)}` });
  });

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const layers = (url: string) =>
  WorkflowR1Env.layer({ operatorBudget: 5, operators: OPERATOR_NAMES }).pipe(
    Layer.provide(
      Layer.mergeAll(
        HttpExecutor.layer({
          baseUrl: `${url}/v1`,
          apiKey: SECRET,
          model: "executor-7b",
          baseDelayMs: 5,
          env: {},
        }),
        Bm25Retriever.layer({ documents: corpus }),
      ),
    ),
  );

/** Run the turns in order; stop at Done. */
const play = (turns: ReadonlyArray<string>, url: string) =>
  Effect.runPromise(
    Effect.gen(function* () {
      const env = yield* Environment;
      const episode = yield* env.reset(task);
      const steps: StepResult[] = [];
      for (const turn of turns) {
        const step = yield* episode.step(turn);
        steps.push(step);
        if (step._tag === "Done") break;
      }
      return { messages: episode.messages, steps, stopSequences: env.stopSequences };
    }).pipe(Effect.provide(layers(url))),
  );

describe("WorkflowR1Env episode over HttpExecutor", () => {
  it("search, answer with a hinted retry, review, final answer: full reward", async () => {
    server = await executorServer();
    const { messages, steps, stopSequences } = await play(
      [
        "<think>I should look this up.</think>\n<tool>Search: author of Hamlet</tool>",
        "<think>Let me get an answer from the passages.</think>\n<tool>AnswerGenerate: Who wrote the play Hamlet?</tool>",
        "<think>Check it.</think>\n<tool>Review: <question>Who wrote the play Hamlet?</question><solution>William Shakespeare</solution></tool>",
        "<think>The review agrees.</think>\n<answer>William Shakespeare</answer>",
      ],
      server.url,
    );
    expect(stopSequences).toContain("</tool>");
    expect(messages.at(-1)?.content).toContain("Who wrote the play Hamlet?");
    expect(steps.map((s) => s._tag)).toEqual(["Observation", "Observation", "Observation", "Done"]);

    const [search, answer, review, done] = steps;
    // Search: the real BM25 index ranks the Hamlet passage first.
    expect(search?._tag === "Observation" && search.observation).toMatch(/^<info>Doc 1 \(Title: Hamlet\)/);
    // AnswerGenerate: the first reply had no <answer>, the hinted retry did.
    expect(answer?._tag === "Observation" && answer.observation).toBe(
      "<info>Thought: The passage says Hamlet was written by William Shakespeare.\nAnswer: William Shakespeare</info>",
    );
    expect(answer?.operatorCalls).toMatchObject([
      { operator: "AnswerGenerate", input: "Who wrote the play Hamlet?" },
    ]);
    expect(review?._tag === "Observation" && review.observation).toBe(
      "<info>Review: the solution is judged correct; no change needed.</info>",
    );

    expect(done?._tag).toBe("Done");
    const outcome = done as EpisodeOutcome;
    expect(outcome.finishReason).toBe("answer");
    expect(outcome.reward).toBe(1);
    expect(outcome.rewardParts).toMatchObject({ format: 0, answer: 1, em: 1 });

    // What reached the executor server: 2 AnswerGenerate calls (plain, then hinted) and 1 Review.
    const prompts = server.requests.map(promptOf);
    expect(prompts).toHaveLength(3);
    expect(prompts[0]).not.toContain("did not contain a valid <answer>");
    expect(prompts[1]).toContain("did not contain a valid <answer>");
    expect(prompts[2]).toContain("Check whether the solution");
    for (const r of server.requests) {
      expect(r.url).toBe("/v1/chat/completions");
      expect(r.headers.authorization).toBe(`Bearer ${SECRET}`);
      expect(r.body).toMatchObject({ model: "executor-7b", temperature: 0 });
    }
  });

  it("a wrong final answer scores 0, a missing one -1 with the format penalty", async () => {
    server = await executorServer();
    const wrong = await play(["<think>Guess.</think>\n<answer>Christopher Marlowe</answer>"], server.url);
    expect(wrong.steps[0]).toMatchObject({ _tag: "Done", reward: 0, finishReason: "answer" });

    const noTags = await play(["Shakespeare, I think.", "<think>ok</think><answer></answer>"], server.url);
    expect(noTags.steps[0]?._tag).toBe("Observation");
    expect(noTags.steps[1]).toMatchObject({ _tag: "Done", reward: -1.5 });
    expect(server.requests).toHaveLength(0);
  });

  it("an executor that keeps failing becomes an error observation without the key, and the episode goes on", async () => {
    server = await startServer((req, _i, res) =>
      json(res, 500, { error: `overloaded (${req.headers.authorization})` }),
    );
    const { steps } = await play(
      [
        "<think>Ask.</think>\n<tool>AnswerGenerate: Who wrote the play Hamlet?</tool>",
        "<think>The operator failed; answer myself.</think>\n<answer>Shakespeare</answer>",
      ],
      server.url,
    );
    const [failed, done] = steps;
    expect(failed?._tag).toBe("Observation");
    const observation = failed?._tag === "Observation" ? failed.observation : "";
    expect(observation).toContain("Error: operator AnswerGenerate failed");
    expect(observation).toContain("HTTP 500");
    expect(observation).not.toContain(SECRET);
    expect(failed?.operatorCalls[0]?.error).toBeDefined();
    // 1 operator attempt (the operator gives up on executor errors) × (1 + 2 HTTP retries, the default).
    expect(server.requests).toHaveLength(3);
    // The agent saw the error and answered; the failed call is counted in the episode's parts.
    expect(done).toMatchObject({
      _tag: "Done",
      reward: 1,
      rewardParts: { executorCalls: 1, executorFailures: 1 },
    });
  });
});
