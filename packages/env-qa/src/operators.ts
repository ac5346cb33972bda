/**
 * The Workflow-R1 operators. Each reads its input in its documented format; a missing or malformed
 * part is answered with a message naming the tag to supply (an observation, not an error). LLM
 * operators call the core `Executor` at temperature 0 and retry with a hint when the reply lacks its
 * tags or was cut off; Search calls the core `Retriever`.
 */
import type {
  ChatMessage,
  ExecutorError,
  ExecutorShape,
  Passage,
  RetrieverError,
  RetrieverShape,
} from "@workflow-r1/core";
import { Effect } from "effect";
import { allBlocks, lastBlock, type OperatorDescription } from "./protocol.js";

export const OPERATOR_NAMES = [
  "AnswerGenerate",
  "MultiAnswerGenerate",
  "ScEnsemble",
  "Review",
  "Revise",
  "PromptOptimizer",
  "Custom",
  "Search",
] as const;

export type OperatorName = (typeof OPERATOR_NAMES)[number];

export interface ExecutorSettings {
  /** Default 0 (the authors' setting). */
  readonly temperature: number;
  readonly maxTokens: number;
  /** Calls per operator request: the first try plus retries with a hint. Default 3. */
  readonly attempts: number;
}

export const defaultExecutorSettings: ExecutorSettings = { temperature: 0, maxTokens: 1024, attempts: 3 };

/** What an operator needs to run. */
export interface OperatorContext {
  readonly executor?: ExecutorShape;
  readonly retriever?: RetrieverShape;
  readonly executorSettings: ExecutorSettings;
  /** Passages Search returns. Default 5. */
  readonly searchTopK: number;
}

export interface Operator extends OperatorDescription {
  readonly name: OperatorName;
  /** Run on the call's input; the result is the observation text (before wrapping and truncation). */
  readonly run: (
    input: string,
    context: OperatorContext,
  ) => Effect.Effect<string, ExecutorError | RetrieverError>;
}

// ───────────────────────────── executor calls ─────────────────────────────

const missingService = (service: string): Effect.Effect<never> =>
  Effect.die(new Error(`operator needs a ${service}, but none was provided to the environment`));

/**
 * Ask the executor and read `tag` from its reply. When the reply lacks the tag (or `accept` rejects
 * it) or was cut off, ask again with a hint appended, up to `attempts` calls in all; then fall back
 * to the last reply's text.
 */
export const completeWithTag = (
  context: OperatorContext,
  prompt: string,
  tag: string,
  accept: (content: string) => boolean = (content) => content !== "",
): Effect.Effect<{ readonly content: string; readonly reply: string; readonly ok: boolean }, ExecutorError> =>
  Effect.gen(function* () {
    const executor = context.executor;
    if (executor === undefined) return yield* missingService("Executor");
    const settings = context.executorSettings;
    let reply = "";
    for (let attempt = 0; attempt < Math.max(1, settings.attempts); attempt++) {
      const hint =
        attempt === 0
          ? ""
          : `\n\nYour previous reply was cut off or did not contain a valid <${tag}>…</${tag}> block. Keep it short and make sure to put the result inside <${tag}>…</${tag}>.`;
      const messages: ReadonlyArray<ChatMessage> = [{ role: "user", content: prompt + hint }];
      const completion = yield* executor.complete({
        messages,
        temperature: settings.temperature,
        maxTokens: settings.maxTokens,
      });
      reply = completion.text;
      const content = lastBlock(reply, tag);
      if (completion.finishReason !== "length" && content !== undefined && accept(content))
        return { content, reply, ok: true };
    }
    return { content: reply.trim(), reply, ok: false };
  });

// ───────────────────────────── input parsing ─────────────────────────────

/** A part of an operator's input that is missing: tell the agent exactly what to supply. */
const missingPart = (operator: Operator, tag: string, what: string): string =>
  `${operator.name} needs ${what} inside <${tag}>…</${tag}>. Usage: <tool>${operator.name}: ${operator.usage}</tool>`;

const requirePart = (input: string, tag: string): string | undefined => {
  const content = allBlocks(input, tag)[0]?.trim();
  return content === undefined || content === "" ? undefined : content;
};

const emptyInput = (operator: Operator): string =>
  `${operator.name} needs a non-empty input. Usage: <tool>${operator.name}: ${operator.usage}</tool>`;

const answerPrompt = (question: string): string =>
  `Answer the following question. First think step by step inside <think>…</think>, then give only the final short answer (a few words) inside <answer>…</answer>.\n\nQuestion: ${question}`;

const thoughtAndAnswer = (reply: string, answer: string): string => {
  const thought = lastBlock(reply, "think");
  return thought ? `Thought: ${thought}\nAnswer: ${answer}` : `Answer: ${answer}`;
};

// ───────────────────────────── operators ─────────────────────────────

const answerGenerate: Operator = {
  name: "AnswerGenerate",
  usage: "input",
  description: "answers a question step by step and returns the reasoning and a short answer.",
  run: (input, context) =>
    input.trim() === ""
      ? Effect.succeed(emptyInput(answerGenerate))
      : Effect.map(completeWithTag(context, answerPrompt(input.trim()), "answer"), (r) =>
          thoughtAndAnswer(r.reply, r.content),
        ),
};

const multiAnswerGenerate: Operator = {
  name: "MultiAnswerGenerate",
  usage: "input",
  description: "answers a question three times independently and returns the three answers.",
  run: (input, context) =>
    input.trim() === ""
      ? Effect.succeed(emptyInput(multiAnswerGenerate))
      : Effect.map(
          Effect.forEach([1, 2, 3], () => completeWithTag(context, answerPrompt(input.trim()), "answer")),
          (replies) =>
            replies.map((r, i) => `[Answer ${i + 1}] ${thoughtAndAnswer(r.reply, r.content)}`).join("\n"),
        ),
};

const LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

const scEnsemble: Operator = {
  name: "ScEnsemble",
  usage: "<query>…</query><solution>…</solution><solution>…</solution>",
  description:
    "given a question and two or more candidate solutions, picks the solution most consistent with the others (self-consistency).",
  run: (input, context) => {
    const query = requirePart(input, "query");
    if (query === undefined) return Effect.succeed(missingPart(scEnsemble, "query", "the question"));
    const solutions = allBlocks(input, "solution")
      .map((s) => s.trim())
      .filter((s) => s !== "")
      .slice(0, LETTERS.length);
    if (solutions.length < 2)
      return Effect.succeed(
        `${scEnsemble.name} needs at least 2 candidate solutions, each inside <solution>…</solution> (got ${solutions.length}). Usage: <tool>${scEnsemble.name}: ${scEnsemble.usage}</tool>`,
      );
    const listed = solutions.map((s, i) => `${LETTERS[i]}: ${s}`).join("\n");
    const prompt = `Question: ${query}\n\nCandidate solutions:\n${listed}\n\nIdentify the solution whose final answer is the most consistent with the other solutions (the answer most of them agree on). Think inside <think>…</think>, then give only the letter of that solution inside <answer>…</answer>.`;
    const valid = (content: string): boolean => {
      const letter = content
        .trim()
        .toUpperCase()
        .replace(/[^A-Z]/g, "");
      return letter.length === 1 && LETTERS.indexOf(letter) < solutions.length;
    };
    return Effect.map(completeWithTag(context, prompt, "answer", valid), (r) => {
      const index = r.ok
        ? LETTERS.indexOf(
            r.content
              .trim()
              .toUpperCase()
              .replace(/[^A-Z]/g, ""),
          )
        : 0;
      return `Most consistent solution: ${LETTERS[index]}\n${solutions[index]}`;
    });
  },
};

const review: Operator = {
  name: "Review",
  usage: "<question>…</question><solution>…</solution>",
  description: "reviews a solution to a question and returns feedback on its correctness.",
  run: (input, context) => {
    const question = requirePart(input, "question");
    if (question === undefined) return Effect.succeed(missingPart(review, "question", "the question"));
    const solution = requirePart(input, "solution");
    if (solution === undefined)
      return Effect.succeed(missingPart(review, "solution", "the solution to review"));
    const prompt = `Question: ${question}\n\nSolution: ${solution}\n\nReview the solution critically: is its reasoning sound and is its final answer correct? Point out any mistake. Think inside <think>…</think>, then give your feedback inside <feedback>…</feedback>.`;
    return Effect.map(completeWithTag(context, prompt, "feedback"), (r) => `Feedback: ${r.content}`);
  },
};

const revise: Operator = {
  name: "Revise",
  usage: "<question>…</question><solution>…</solution><feedback>…</feedback>",
  description: "revises a solution to a question according to feedback and returns the improved solution.",
  run: (input, context) => {
    const question = requirePart(input, "question");
    if (question === undefined) return Effect.succeed(missingPart(revise, "question", "the question"));
    const solution = requirePart(input, "solution");
    if (solution === undefined)
      return Effect.succeed(missingPart(revise, "solution", "the solution to revise"));
    const feedback = requirePart(input, "feedback");
    if (feedback === undefined)
      return Effect.succeed(missingPart(revise, "feedback", "the feedback to apply"));
    const prompt = `Question: ${question}\n\nSolution: ${solution}\n\nFeedback: ${feedback}\n\nRevise the solution so that it addresses the feedback. Think inside <think>…</think>, then give the complete revised solution, ending with its short final answer, inside <solution>…</solution>.`;
    return Effect.map(completeWithTag(context, prompt, "solution"), (r) => `Revised solution: ${r.content}`);
  },
};

const promptOptimizer: Operator = {
  name: "PromptOptimizer",
  usage: "input",
  description: "rewrites a query to be clearer and more specific, and returns the refined query.",
  run: (input, context) => {
    if (input.trim() === "") return Effect.succeed(emptyInput(promptOptimizer));
    const prompt = `Rewrite the following query so that it is clear, specific and easy to answer, keeping its meaning. Think inside <think>…</think>, then give only the refined query inside <prompt>…</prompt>.\n\nQuery: ${input.trim()}`;
    return Effect.map(completeWithTag(context, prompt, "prompt"), (r) => `Refined query: ${r.content}`);
  },
};

const custom: Operator = {
  name: "Custom",
  usage: "<task>…</task><instruction>…</instruction>",
  description: "follows your own instruction on a task and returns the result.",
  run: (input, context) => {
    const task = requirePart(input, "task");
    if (task === undefined) return Effect.succeed(missingPart(custom, "task", "the task"));
    const instruction = requirePart(input, "instruction");
    if (instruction === undefined)
      return Effect.succeed(missingPart(custom, "instruction", "the instruction"));
    const prompt = `${instruction}\n\nTask: ${task}\n\nThink inside <think>…</think>, then give your result inside <answer>…</answer>.`;
    return Effect.map(completeWithTag(context, prompt, "answer"), (r) => `Result: ${r.content}`);
  },
};

/** Passages as the agent reads them: numbered, title then text. */
export const formatPassages = (passages: ReadonlyArray<Passage>): string =>
  passages.length === 0
    ? "No passages found."
    : passages.map((p, i) => `Doc ${i + 1} (Title: ${p.title}) ${p.text}`).join("\n");

const search: Operator = {
  name: "Search",
  usage: "query",
  description: `searches the knowledge corpus and returns the top passages (title and text).`,
  run: (input, context) => {
    if (input.trim() === "") return Effect.succeed(emptyInput(search));
    const retriever = context.retriever;
    if (retriever === undefined) return missingService("Retriever");
    return Effect.map(retriever.search(input.trim(), context.searchTopK), formatPassages);
  },
};

/** Every operator, by name. */
export const operators: Readonly<Record<OperatorName, Operator>> = {
  AnswerGenerate: answerGenerate,
  MultiAnswerGenerate: multiAnswerGenerate,
  ScEnsemble: scEnsemble,
  Review: review,
  Revise: revise,
  PromptOptimizer: promptOptimizer,
  Custom: custom,
  Search: search,
};

export const isOperatorName = (name: string): name is OperatorName =>
  (OPERATOR_NAMES as ReadonlyArray<string>).includes(name);
