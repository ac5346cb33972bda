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
import { allBlocks, type OperatorDescription } from "./protocol.js";

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

/**
 * The paper's operator set: the seven closed-book operators. Search (retrieval) is this
 * project's opt-in extra: it turns the task into retrieval QA and needs a retriever.
 */
export const PAPER_OPERATORS: ReadonlyArray<OperatorName> = [
  "AnswerGenerate",
  "MultiAnswerGenerate",
  "ScEnsemble",
  "Review",
  "Revise",
  "PromptOptimizer",
  "Custom",
];

export interface ExecutorSettings {
  /** Default 0 (the authors' setting). */
  readonly temperature: number;
  readonly maxTokens: number;
  /** Calls per operator request: the first try plus retries with a hint. Default 3. */
  readonly attempts: number;
  /**
   * Temperature of MultiAnswerGenerate's three samples. Default 0.7, so that they can differ: the
   * authors' code samples them at the executor temperature, 0, which makes the three identical
   * (set 0 to reproduce that exactly).
   */
  readonly multiAnswerTemperature: number;
}

export const defaultExecutorSettings: ExecutorSettings = {
  temperature: 0,
  maxTokens: 1024,
  attempts: 3,
  multiAnswerTemperature: 0.7,
};

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

export interface TaggedReply {
  /** The last reply text. */
  readonly reply: string;
  /** The first non-blank content of each required tag (as the authors' `parse_tag`). */
  readonly tags: Readonly<Record<string, string>>;
  /** Whether the reply had every required tag, passed `accept`, and was not cut off. */
  readonly ok: boolean;
}

const firstTag = (text: string, tag: string): string => allBlocks(text, tag)[0]?.trim() ?? "";

/**
 * Ask the executor for a reply holding every tag of `required`. When the reply lacks one (or
 * `accept` rejects it) or was cut off (`finishReason: "length"`), the reply stays in the
 * conversation and the prompt is asked again with a hint in front (be more concise / include the
 * missing tags), up to `attempts` calls in all; then the last reply is used as it is.
 */
export const completeWithTags = (
  context: OperatorContext,
  prompt: string,
  required: ReadonlyArray<string>,
  accept: (tags: Readonly<Record<string, string>>) => boolean = () => true,
  temperature?: number,
): Effect.Effect<TaggedReply, ExecutorError> =>
  Effect.gen(function* () {
    const executor = context.executor;
    if (executor === undefined) return yield* missingService("Executor");
    const settings = context.executorSettings;
    const messages: ChatMessage[] = [{ role: "user", content: prompt }];
    let last: TaggedReply = { reply: "", tags: {}, ok: false };
    const attempts = Math.max(1, settings.attempts);
    for (let attempt = 0; attempt < attempts; attempt++) {
      const completion = yield* executor.complete({
        messages: [...messages],
        temperature: temperature ?? settings.temperature,
        maxTokens: settings.maxTokens,
      });
      const reply = completion.text;
      const tags = Object.fromEntries(required.map((tag) => [tag, firstTag(reply, tag)]));
      const missing = required.filter((tag) => tags[tag] === "");
      const truncated = completion.finishReason === "length";
      const valid = missing.length === 0 && accept(tags);
      last = { reply, tags, ok: valid && !truncated };
      if (last.ok) return last;
      const hints: string[] = [];
      if (truncated) hints.push("Your previous reply was cut off: be more concise.");
      for (const tag of missing)
        hints.push(`Your previous reply did not contain a valid <${tag}>…</${tag}> block.`);
      if (missing.length === 0 && !valid)
        hints.push("Your previous reply was not valid: follow the format exactly.");
      messages.push(
        { role: "assistant", content: reply },
        { role: "user", content: `${hints.join(" ")}\n\n${prompt}` },
      );
    }
    return last;
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

/** `Thought: …` + `{label}: {answer}` when the tags came back; the raw reply otherwise. */
const labelled = (r: TaggedReply, label: string, tag = "answer", thought = true): string => {
  const think = r.tags["think"] ?? "";
  const answer = r.tags[tag] ?? "";
  if (answer === "") return r.reply.trim();
  return think !== "" && thought ? `Thought: ${think}\n${label}: ${answer}` : `${label}: ${answer}`;
};

// ───────────────────────────── operators ─────────────────────────────

const answerGenerate: Operator = {
  name: "AnswerGenerate",
  usage: "input",
  description: "answers a question step by step and returns the reasoning and a short answer.",
  run: (input, context) =>
    input.trim() === ""
      ? Effect.succeed(emptyInput(answerGenerate))
      : Effect.map(completeWithTags(context, answerPrompt(input.trim()), ["think", "answer"]), (r) =>
          labelled(r, "Answer"),
        ),
};

const multiAnswerGenerate: Operator = {
  name: "MultiAnswerGenerate",
  usage: "input",
  description:
    "answers a question three times independently (sampled, so the answers may differ) and returns the three answers.",
  run: (input, context) =>
    input.trim() === ""
      ? Effect.succeed(emptyInput(multiAnswerGenerate))
      : Effect.map(
          Effect.forEach([1, 2, 3], () =>
            completeWithTags(
              context,
              answerPrompt(input.trim()),
              ["think", "answer"],
              undefined,
              context.executorSettings.multiAnswerTemperature,
            ),
          ),
          (replies) =>
            replies
              .map((r, i) => `[Answer ${i + 1}]\n${labelled(r, "Answer", "answer", false)}`)
              .join("\n\n"),
        ),
};

const LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

const scEnsemble: Operator = {
  name: "ScEnsemble",
  usage: "<query>…</query><solution>…</solution><solution>…</solution>",
  description:
    "given a question and two or more candidate solutions, returns the answer most of them agree on (self-consistency).",
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
    const letterOf = (tags: Readonly<Record<string, string>>): number => {
      const letter = (tags["answer"] ?? "").toUpperCase().replace(/[^A-Z]/g, "");
      const index = letter.length === 1 ? LETTERS.indexOf(letter) : -1;
      return index < solutions.length ? index : -1;
    };
    return Effect.map(
      completeWithTags(context, prompt, ["think", "answer"], (tags) => letterOf(tags) >= 0),
      (r) => {
        const index = letterOf(r.tags);
        if (index < 0) return r.reply.trim();
        // The chosen answer itself, as the authors' operator returns it; the letters exist
        // only inside the executor's prompt.
        return `Most consistent answer: ${solutions[index]}`;
      },
    );
  },
};

const review: Operator = {
  name: "Review",
  usage: "<question>…</question><solution>…</solution>",
  description:
    "checks a solution to a question: confirms it, or, only when highly confident that it is wrong, says so and gives feedback.",
  run: (input, context) => {
    const question = requirePart(input, "question");
    if (question === undefined) return Effect.succeed(missingPart(review, "question", "the question"));
    const solution = requirePart(input, "solution");
    if (solution === undefined)
      return Effect.succeed(missingPart(review, "solution", "the solution to review"));
    // The authors' Review flags a solution only when it is confidently wrong; otherwise it
    // confirms it, so that a correct answer is not talked out of by a doubtful critique.
    const prompt = `Question: ${question}\n\nSolution: ${solution}\n\nCheck whether the solution's final answer is correct. Say it is wrong only if you are highly confident that it is; if it may well be right, accept it. Think inside <think>…</think>, give your verdict, the single word correct or wrong, inside <verdict>…</verdict>, and, only when the verdict is wrong, explain the mistake inside <feedback>…</feedback>.`;
    const verdictOf = (tags: Readonly<Record<string, string>>) => {
      const word = (tags["verdict"] ?? "").toLowerCase().replace(/[^a-z]/g, "");
      return word === "correct" || word === "wrong" ? word : undefined;
    };
    return Effect.map(
      completeWithTags(context, prompt, ["verdict"], (tags) => verdictOf(tags) !== undefined),
      (r) => {
        const verdict = verdictOf(r.tags);
        if (verdict === undefined) return r.reply.trim();
        if (verdict === "correct") return "Review: the solution is judged correct; no change needed.";
        const feedback = firstTag(r.reply, "feedback");
        return `Review: the solution is judged wrong.${feedback === "" ? "" : `\nFeedback: ${feedback}`}`;
      },
    );
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
    const prompt = `Question: ${question}\n\nSolution: ${solution}\n\nFeedback: ${feedback}\n\nRevise the solution so that it addresses the feedback. Think inside <think>…</think>, then give the complete revised solution, ending with its short final answer, inside <answer>…</answer>.`;
    return Effect.map(completeWithTags(context, prompt, ["think", "answer"]), (r) =>
      labelled(r, "Revised solution"),
    );
  },
};

const promptOptimizer: Operator = {
  name: "PromptOptimizer",
  usage: "input",
  description: "rewrites a query to be clearer and more specific, and returns the refined query.",
  run: (input, context) => {
    if (input.trim() === "") return Effect.succeed(emptyInput(promptOptimizer));
    const prompt = `Rewrite the following query so that it is clear, specific and easy to answer, keeping its meaning. Think inside <think>…</think>, then give only the refined query inside <answer>…</answer>.\n\nQuery: ${input.trim()}`;
    return Effect.map(completeWithTags(context, prompt, ["think", "answer"]), (r) =>
      labelled(r, "Refined query"),
    );
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
    const prompt = `${instruction}\n\n${task}\n\nPut your final result inside <answer>…</answer>.`;
    return Effect.map(completeWithTags(context, prompt, ["answer"]), (r) =>
      labelled(r, "Result", "answer", false),
    );
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
