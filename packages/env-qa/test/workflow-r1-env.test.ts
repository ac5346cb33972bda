import {
  type Completion,
  type CompletionRequest,
  Environment,
  type EnvironmentShape,
  Executor,
  ExecutorHttpError,
  type Passage,
  Retriever,
  RetrieverError,
} from "@workflow-r1/core";
import { Effect, Exit, Layer } from "effect";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  FORMAT_WARNING,
  OPERATOR_NAMES,
  operators,
  parseTurn,
  stopSequences,
  WorkflowR1Env,
  type WorkflowR1EnvConfig,
} from "../src/index.js";
import { truncateMiddle } from "../src/protocol.js";

/** An executor that answers from a script and records every request. */
const scriptedExecutor = (replies: Array<Completion | Error>) => {
  const requests: CompletionRequest[] = [];
  const layer = Layer.succeed(Executor, {
    complete: (request) =>
      Effect.suspend(() => {
        requests.push(request);
        const next = replies.shift();
        if (next === undefined) return Effect.die(new Error("executor script exhausted"));
        if (next instanceof Error)
          return Effect.fail(new ExecutorHttpError({ message: next.message, status: 500, attempts: 1 }));
        return Effect.succeed(next);
      }),
  });
  return { requests, layer };
};

const scriptedRetriever = (passages: ReadonlyArray<Passage> | Error) => {
  const queries: Array<{ query: string; topK: number }> = [];
  const layer = Layer.succeed(Retriever, {
    search: (query, topK) =>
      Effect.suspend(() => {
        queries.push({ query, topK });
        return passages instanceof Error
          ? Effect.fail(new RetrieverError({ message: passages.message }))
          : Effect.succeed(passages.slice(0, topK));
      }),
  });
  return { queries, layer };
};

const stop = (text: string): Completion => ({ text, finishReason: "stop" });

const PASSAGES: ReadonlyArray<Passage> = [
  { id: "1", title: "Paris", text: "Paris is the capital of France.", score: 2 },
  { id: "2", title: "France", text: "France is in Europe.", score: 1 },
];

const withEnv = <A>(
  config: WorkflowR1EnvConfig,
  executor: Layer.Layer<Executor>,
  retriever: Layer.Layer<Retriever>,
  body: (env: EnvironmentShape) => Effect.Effect<A, unknown>,
): Promise<A> =>
  Effect.runPromise(
    Effect.gen(function* () {
      const env = yield* Environment;
      return yield* body(env);
    }).pipe(
      // All eight operators unless a test says otherwise: these tests exercise Search too.
      Effect.provide(
        WorkflowR1Env.layer({ operators: OPERATOR_NAMES, ...config }).pipe(
          Layer.provide(Layer.mergeAll(executor, retriever)),
        ),
      ),
    ) as Effect.Effect<A>,
  );

const TASK = { id: "t1", question: "What is the capital of France?", goldenAnswers: ["Paris"] };

describe("parseTurn", () => {
  it("reads answers, tool calls and malformed turns", () => {
    expect(parseTurn("<think>x</think><answer> Paris </answer>")).toEqual({
      _tag: "Answer",
      answer: "Paris",
    });
    expect(parseTurn("<think>x</think><tool>Search:  capital of France </tool>")).toEqual({
      _tag: "ToolCall",
      operator: "Search",
      input: "capital of France",
    });
    expect(parseTurn("<tool>Search capital</tool>")._tag).toBe("BadToolCall");
    expect(parseTurn("<think>x</think>")._tag).toBe("Invalid");
    expect(parseTurn("<tool>Search: x")._tag).toBe("Invalid");
    expect(parseTurn("<tool>Review: <question>q</question>\n<solution>s</solution></tool>")).toEqual({
      _tag: "ToolCall",
      operator: "Review",
      input: "<question>q</question>\n<solution>s</solution>",
    });
  });

  it("never throws on random or adversarial model output", () => {
    const piece = fc.oneof(
      fc.constantFrom(
        "<think>",
        "</think>",
        "<tool>",
        "</tool>",
        "<answer>",
        "</answer>",
        "<info>",
        ":",
        "Search",
      ),
      fc.constantFrom(
        "<",
        ">",
        "</",
        "\n",
        " ",
        "<tool>:</tool>",
        "<tool>1abc: x</tool>",
        "\u0000",
        "\ud800",
      ),
      fc.string({ maxLength: 8, unit: "binary" }),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 30 }), (pieces) => {
        const turn = parseTurn(pieces.join(""));
        return ["Answer", "ToolCall", "BadToolCall", "Invalid"].includes(turn._tag);
      }),
      { numRuns: 3000 },
    );
  });
});

describe("truncateMiddle", () => {
  it("keeps short text and cuts long text in the middle with a marker", () => {
    expect(truncateMiddle("abc", 3)).toBe("abc");
    const cut = truncateMiddle("a".repeat(50) + "b".repeat(50), 20);
    expect(cut).toBe(`${"a".repeat(10)}\n…[80 characters truncated]…\n${"b".repeat(10)}`);
  });
});

describe("WorkflowR1Env episodes", () => {
  it("runs a Search cycle then an answer, and scores it", async () => {
    const executor = scriptedExecutor([]);
    const retriever = scriptedRetriever(PASSAGES);
    const result = await withEnv({}, executor.layer, retriever.layer, (env) =>
      Effect.gen(function* () {
        expect(env.stopSequences).toEqual(["</tool>", "</answer>"]);
        const episode = yield* env.reset(TASK);
        const first = yield* episode.step(
          "<think>Look it up.</think>\n<tool>Search: capital of France</tool>",
        );
        const second = yield* episode.step("<think>It is Paris.</think>\n<answer>Paris</answer>");
        return { messages: episode.messages, first, second };
      }),
    );
    expect(result.messages.map((m) => m.role)).toEqual(["system", "user"]);
    expect(result.messages[1]?.content).toContain("Query: What is the capital of France?");
    expect(result.messages[1]?.content).toContain("<tool>ScEnsemble: <query>…</query><solution>…</solution>");
    expect(result.messages[1]?.content).toContain("at most 20 times");
    // The instructions encourage combining operators within the budget.
    expect(result.messages[1]?.content).toContain("trying different combinations is encouraged");
    expect(retriever.queries).toEqual([{ query: "capital of France", topK: 5 }]);
    expect(result.first).toMatchObject({
      _tag: "Observation",
      observation:
        "<info>Doc 1 (Title: Paris) Paris is the capital of France.\nDoc 2 (Title: France) France is in Europe.</info>",
    });
    expect(result.first._tag === "Observation" && result.first.operatorCalls[0]?.operator).toBe("Search");
    expect(result.second).toMatchObject({
      _tag: "Done",
      reward: 1,
      finishReason: "answer",
      rewardParts: { format: 0, answer: 1, em: 1, subEm: 1, f1: 1 },
    });
  });

  it("answers format warnings, unknown operators and bad call syntax without ending", async () => {
    const { layer: ex } = scriptedExecutor([]);
    const { layer: re } = scriptedRetriever(PASSAGES);
    const out = await withEnv({ operators: ["Search"] }, ex, re, (env) =>
      Effect.gen(function* () {
        const episode = yield* env.reset(TASK);
        const a = yield* episode.step("I think it is Paris.");
        const b = yield* episode.step("<think>x</think><tool>AnswerGenerate: q</tool>");
        const c = yield* episode.step("<think>x</think><tool>just search</tool>");
        const done = yield* episode.finish("max-tokens");
        return { a, b, c, done, prompt: episode.messages[1]?.content ?? "" };
      }),
    );
    expect(out.a).toMatchObject({ observation: `<info>${FORMAT_WARNING}</info>` });
    expect(FORMAT_WARNING).toContain("<tool>OperatorName: input</tool>");
    expect(FORMAT_WARNING).toContain("</answer>");
    // No complete answer pair in the warning: an episode that never answers must keep answer -1.
    expect(FORMAT_WARNING).not.toMatch(/<answer>[\s\S]*?<\/answer>/);
    expect(out.b._tag === "Observation" && out.b.observation).toContain('Unknown operator "AnswerGenerate"');
    expect(out.c._tag === "Observation" && out.c.observation).toContain("<tool>OperatorName: input</tool>");
    expect(out.prompt).not.toContain("AnswerGenerate");
    expect(out.done).toEqual({
      reward: -1.5,
      finishReason: "max-tokens",
      rewardParts: {
        format: -0.5,
        answer: -1,
        em: 0,
        subEm: 0,
        f1: 0,
        executorCalls: 0,
        executorFailures: 0,
      },
    });
  });

  it("returns executor and retriever failures as error observations recorded in operatorCalls", async () => {
    const { layer: ex } = scriptedExecutor([new Error("HTTP 500 from executor")]);
    const { layer: re } = scriptedRetriever(new Error("index offline"));
    const out = await withEnv({}, ex, re, (env) =>
      Effect.gen(function* () {
        const episode = yield* env.reset(TASK);
        const a = yield* episode.step("<think>x</think><tool>AnswerGenerate: capital of France?</tool>");
        const b = yield* episode.step("<think>x</think><tool>Search: capital</tool>");
        return [a, b];
      }),
    );
    for (const [step, message] of [
      [out[0], "HTTP 500 from executor"],
      [out[1], "index offline"],
    ] as const) {
      if (step?._tag !== "Observation") throw new Error("expected an observation");
      expect(step.observation).toContain("Error: operator");
      expect(step.observation).toContain(message);
      expect(step.operatorCalls).toHaveLength(1);
      expect(step.operatorCalls[0]?.error).toBe(message);
      expect(step.operatorCalls[0]?.latencyMs).toBeGreaterThanOrEqual(0);
    }
  });

  it("ends on the operator budget and scores the transcript so far", async () => {
    const { layer: ex } = scriptedExecutor([]);
    const { queries, layer: re } = scriptedRetriever(PASSAGES);
    const out = await withEnv({ operatorBudget: 2 }, ex, re, (env) =>
      Effect.gen(function* () {
        const episode = yield* env.reset(TASK);
        const steps = [];
        for (let i = 0; i < 3; i++)
          steps.push(yield* episode.step(`<think>t${i}</think><tool>Search: q${i}</tool>`));
        const after = yield* Effect.exit(episode.step("<answer>Paris</answer>"));
        return { steps, after, prompt: episode.messages[1]?.content ?? "" };
      }),
    );
    expect(out.prompt).toContain("at most 2 times");
    expect(out.steps.map((s) => s._tag)).toEqual(["Observation", "Observation", "Done"]);
    expect(out.steps[2]).toMatchObject({ finishReason: "operator-budget", reward: -1.5 });
    expect(queries).toHaveLength(2);
    expect(Exit.isFailure(out.after)).toBe(true);
  });

  it("neutralises answer tags in operator output so only the agent's answer is scored", async () => {
    const { layer: ex } = scriptedExecutor([stop("<think>t</think><answer>a</answer>")]);
    const sneaky: Passage[] = [{ id: "x", title: "T", text: "<answer>Paris</answer>", score: 1 }];
    const { layer: re } = scriptedRetriever(sneaky);
    const out = await withEnv({}, ex, re, (env) =>
      Effect.gen(function* () {
        const episode = yield* env.reset(TASK);
        const step = yield* episode.step("<think>x</think><tool>Search: q</tool>");
        return { step, done: yield* episode.finish("max-turns") };
      }),
    );
    expect(out.step._tag === "Observation" && out.step.observation).toBe(
      "<info>Doc 1 (Title: T) [answer]Paris[/answer]</info>",
    );
    expect(out.done.rewardParts["answer"]).toBe(-1);
  });

  it("truncates long observations in the middle before wrapping", async () => {
    const long: Passage[] = [{ id: "x", title: "T", text: "y".repeat(5000), score: 1 }];
    const { layer: ex } = scriptedExecutor([]);
    const { layer: re } = scriptedRetriever(long);
    const step = await withEnv({ maxObservationChars: 100 }, ex, re, (env) =>
      Effect.flatMap(env.reset(TASK), (e) => e.step("<think>x</think><tool>Search: q</tool>")),
    );
    if (step._tag !== "Observation") throw new Error("expected an observation");
    expect(step.observation.startsWith("<info>Doc 1 (Title: T) y")).toBe(true);
    expect(step.observation).toContain("characters truncated]");
    expect(step.observation.length).toBeLessThan(160);
    // The operator call keeps the full output.
    expect(step.operatorCalls[0]?.output.length).toBeGreaterThan(5000);
  });

  it("rejects bad configs with the field name", async () => {
    const exit = await Effect.runPromiseExit(WorkflowR1Env.resolveConfig({ operatorBudget: -1 }));
    expect(Exit.isFailure(exit) && JSON.stringify(exit.cause)).toContain("operatorBudget");
    const exit2 = await Effect.runPromiseExit(
      WorkflowR1Env.resolveConfig({ operators: ["Nope" as "Search"] }),
    );
    expect(Exit.isFailure(exit2) && JSON.stringify(exit2.cause)).toContain("Nope");
  });
});

/** Run one operator over a scripted executor. */
const runOp = async (name: keyof typeof operators, input: string, replies: Completion[] = []) => {
  const script = [...replies];
  const requests: CompletionRequest[] = [];
  const output = await Effect.runPromise(
    operators[name].run(input, {
      executor: {
        complete: (request) =>
          Effect.sync(() => {
            requests.push(request);
            const next = script.shift();
            if (!next) throw new Error("script exhausted");
            return next;
          }),
      },
      executorSettings: { temperature: 0, maxTokens: 64, attempts: 3, multiAnswerTemperature: 0.7 },
      searchTopK: 5,
    }),
  );
  return { output, requests };
};

describe("operators", () => {
  it.each<[keyof typeof operators, string, string]>([
    ["AnswerGenerate", "  ", "AnswerGenerate needs a non-empty input"],
    ["MultiAnswerGenerate", "", "MultiAnswerGenerate needs a non-empty input"],
    ["PromptOptimizer", "", "PromptOptimizer needs a non-empty input"],
    ["ScEnsemble", "<solution>a</solution><solution>b</solution>", "<query>…</query>"],
    ["ScEnsemble", "<query>q</query><solution>a</solution>", "at least 2 candidate solutions"],
    ["ScEnsemble", "<query>q</query><solution>a</solution><solution> </solution>", "(got 1)"],
    ["Review", "<solution>s</solution>", "<question>…</question>"],
    ["Review", "<question>q</question>", "<solution>…</solution>"],
    ["Revise", "<question>q</question><solution>s</solution>", "<feedback>…</feedback>"],
    ["Revise", "<question>q</question><feedback>f</feedback>", "<solution>…</solution>"],
    ["Revise", "<solution>s</solution><feedback>f</feedback>", "<question>…</question>"],
    ["Custom", "<instruction>i</instruction>", "<task>…</task>"],
    ["Custom", "<task>t</task>", "<instruction>…</instruction>"],
  ])("%s %j asks for the missing part", async (name, input, expected) => {
    const { output, requests } = await runOp(name, input);
    expect(output).toContain(expected);
    expect(output).toContain(`Usage: <tool>${name}:`);
    expect(requests).toHaveLength(0);
  });

  it("AnswerGenerate retries with a hint when the reply lacks its tags or is cut off", async () => {
    const { output, requests } = await runOp("AnswerGenerate", "capital of France?", [
      stop("<answer>Paris</answer>"),
      { text: "<think>long", finishReason: "length" },
      stop("<think>Capital of France.</think><answer>Paris</answer>"),
    ]);
    expect(output).toBe("Thought: Capital of France.\nAnswer: Paris");
    expect(requests).toHaveLength(3);
    expect(requests.every((r) => r.temperature === 0 && r.maxTokens === 64)).toBe(true);
    expect(requests[0]?.messages).toHaveLength(1);
    expect(requests[0]?.messages[0]?.content).toContain("<answer>…</answer>");
    // The failed reply stays in the conversation; the prompt is asked again after a hint.
    expect(requests[1]?.messages.map((m) => m.role)).toEqual(["user", "assistant", "user"]);
    expect(requests[1]?.messages[1]?.content).toBe("<answer>Paris</answer>");
    expect(requests[1]?.messages[2]?.content).toContain("did not contain a valid <think>…</think> block");
    expect(requests[1]?.messages[2]?.content).toContain("Question: capital of France?");
    expect(requests[2]?.messages[4]?.content).toContain("cut off");
  });

  it("AnswerGenerate uses the raw reply after the last attempt", async () => {
    const { output, requests } = await runOp("AnswerGenerate", "q", [stop("a"), stop("b"), stop(" Paris! ")]);
    expect(requests).toHaveLength(3);
    expect(output).toBe("Paris!");
  });

  it("MultiAnswerGenerate labels three answers", async () => {
    const { output } = await runOp("MultiAnswerGenerate", "q", [
      stop("<think>t</think><answer>A</answer>"),
      stop("<think>t</think><answer>B</answer>"),
      stop("<think>t</think><answer>C</answer>"),
    ]);
    expect(output).toBe("[Answer 1]\nAnswer: A\n\n[Answer 2]\nAnswer: B\n\n[Answer 3]\nAnswer: C");
  });

  it("MultiAnswerGenerate samples its three answers at multiAnswerTemperature (the others at the executor temperature)", async () => {
    const replies = () => [1, 2, 3].map(() => stop("<think>t</think><answer>A</answer>"));
    const { requests } = await runOp("MultiAnswerGenerate", "q", replies());
    expect(requests.map((r) => r.temperature)).toEqual([0.7, 0.7, 0.7]);
    const single = await runOp("AnswerGenerate", "q", replies());
    expect(single.requests.map((r) => r.temperature)).toEqual([0]);
  });

  it("ScEnsemble returns the chosen solution and retries on an invalid letter", async () => {
    const { output, requests } = await runOp(
      "ScEnsemble",
      "<query>q</query><solution>Paris</solution><solution>Lyon</solution><solution>Paris.</solution>",
      [stop("<think>t</think><answer>Z</answer>"), stop("<think>A and C agree</think><answer>C</answer>")],
    );
    expect(requests).toHaveLength(2);
    expect(requests[0]?.messages[0]?.content).toContain("B: Lyon");
    expect(requests[1]?.messages[2]?.content).toContain("not valid");
    // The answer itself, as the authors' operator returns it; not a letter.
    expect(output).toBe("Most consistent answer: Paris.");
    expect(output).not.toMatch(/\b[A-C]:/);
  });

  it("Review, Revise, PromptOptimizer and Custom read their reply tags", async () => {
    // Review speaks up only when confident the answer is wrong; otherwise it confirms it.
    const confirmed = await runOp("Review", "<question>q</question><solution>s</solution>", [
      stop("<think>plausible</think><verdict>correct</verdict>"),
    ]);
    expect(confirmed.output).toBe("Review: the solution is judged correct; no change needed.");
    expect(confirmed.requests[0]?.messages[0]?.content).toContain("highly confident");
    const reviewed = await runOp("Review", "<question>q</question><solution>s</solution>", [
      stop("<verdict>maybe</verdict>"),
      stop("<verdict>Wrong</verdict><feedback>wrong city</feedback>"),
    ]);
    expect(reviewed.requests).toHaveLength(2);
    expect(reviewed.output).toBe("Review: the solution is judged wrong.\nFeedback: wrong city");
    const revised = await runOp(
      "Revise",
      "<question>q</question><solution>s</solution><feedback>f</feedback>",
      [stop("<think>fix</think><answer>Paris</answer>")],
    );
    expect(revised.output).toBe("Thought: fix\nRevised solution: Paris");
    const refined = await runOp("PromptOptimizer", "capital?", [
      stop("<think>t</think><answer>What is the capital?</answer>"),
    ]);
    expect(refined.output).toBe("Thought: t\nRefined query: What is the capital?");
    const custom = await runOp("Custom", "<task>2+2</task><instruction>Compute.</instruction>", [
      stop("<answer>4</answer>"),
    ]);
    expect(custom.output).toBe("Result: 4");
    expect(custom.requests[0]?.messages[0]?.content.startsWith("Compute.")).toBe(true);
  });

  it("stop sequences end a turn at one call or the answer", () => {
    expect(stopSequences).toEqual(["</tool>", "</answer>"]);
  });
});
