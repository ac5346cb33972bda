/**
 * The Workflow-R1 turn protocol: the prompt, the turn parser, observation wrapping and truncation.
 * One assistant turn is `<think>…</think>` followed by one operator call `<tool>Name: input</tool>`
 * or the final `<answer>…</answer>`; operator results come back as `<info>…</info>`.
 */
import type { ChatMessage } from "@workflow-r1/core";
import { pyStrip } from "./metrics.js";

/** Sampling stops at these, so one assistant turn holds at most one operator call or the answer. */
export const stopSequences: ReadonlyArray<string> = ["</tool>", "</answer>"];

export const SYSTEM_PROMPT = "You are a helpful assistant who is an expert in reasoning and problem solving.";

/**
 * Shown when a turn has neither a valid operator call nor an answer. It names the answer tag only by
 * its closer: the reward reads the last `<answer>…</answer>` anywhere in the transcript, so a complete
 * pair here would count as an answer of an episode that never gave one (0 instead of -1).
 */
export const FORMAT_WARNING =
  "Invalid format. Think inside <think>…</think>, then either use <tool>OperatorName: input</tool> to call one operator, or give the final answer inside answer tags, closed with </answer>.";

/**
 * Operator output (executor replies, retrieved passages) may itself contain answer tags; they are
 * rewritten to `[answer]…[/answer]` so that only the agent's own `<answer>` is ever scored.
 */
export const neutralizeAnswerTags = (text: string): string =>
  text.replace(/<answer>/g, "[answer]").replace(/<\/answer>/g, "[/answer]");

/** What the prompt says about one operator. */
export interface OperatorDescription {
  readonly name: string;
  /** The exact input format, e.g. `<question>…</question><solution>…</solution>`. */
  readonly usage: string;
  readonly description: string;
}

export interface PromptOptions {
  readonly operators: ReadonlyArray<OperatorDescription>;
  /** The operator-call budget stated in the prompt. */
  readonly operatorBudget: number;
}

/** The system + user messages an episode starts from. */
export const buildPrompt = (question: string, options: PromptOptions): ReadonlyArray<ChatMessage> => {
  const operatorLines = options.operators
    .map((op) => `- ${op.name}: ${op.description}\n  Usage: <tool>${op.name}: ${op.usage}</tool>`)
    .join("\n");
  const user = [
    "Solve the query below by working in Think-Action cycles.",
    "In every turn, first reason inside <think>…</think>. Then either call exactly one operator as <tool>OperatorName: input</tool>, or, when you are sure, give the final answer inside <answer>…</answer>.",
    "After an operator call, its result is returned to you inside <info>…</info>. Read it, think again, and continue.",
    "The final answer must be short: a few words, an entity, a number, or yes/no, without explanation.",
    "",
    "Available operators:",
    operatorLines,
    "",
    `You may call operators at most ${options.operatorBudget} times in total. Use them freely within that budget: operators can be combined into a workflow (for example several answers, then an ensemble of them, then a review and a revision), and trying different combinations is encouraged.`,
    "",
    `Query: ${question}`,
  ].join("\n");
  return [
    { role: "system", content: SYSTEM_PROMPT },
    { role: "user", content: user },
  ];
};

/** One assistant turn, read. */
export type ParsedTurn =
  | { readonly _tag: "Answer"; readonly answer: string }
  | { readonly _tag: "ToolCall"; readonly operator: string; readonly input: string }
  /** A `<tool>` block whose content is not `OperatorName: input`. */
  | { readonly _tag: "BadToolCall"; readonly content: string; readonly message: string }
  | { readonly _tag: "Invalid" };

const firstBlock = (text: string, tag: string): string | undefined => {
  const open = `<${tag}>`;
  const close = `</${tag}>`;
  const start = text.indexOf(open);
  if (start < 0) return undefined;
  const end = text.indexOf(close, start + open.length);
  return end < 0 ? undefined : text.slice(start + open.length, end);
};

const CALL = /^\s*([A-Za-z][A-Za-z0-9_-]*)\s*:\s*([\s\S]*?)\s*$/;

/** Read one assistant turn: a complete `<answer>` wins over a `<tool>` call. Never throws. */
export const parseTurn = (text: string): ParsedTurn => {
  const answer = firstBlock(text, "answer");
  if (answer !== undefined) return { _tag: "Answer", answer: pyStrip(answer) };
  const call = firstBlock(text, "tool");
  if (call === undefined) return { _tag: "Invalid" };
  const match = CALL.exec(call);
  if (!match)
    return {
      _tag: "BadToolCall",
      content: call,
      message:
        "Invalid operator call. Write the call as <tool>OperatorName: input</tool>, with the operator's name, a colon, then its input.",
    };
  return { _tag: "ToolCall", operator: match[1] ?? "", input: match[2] ?? "" };
};

/** Wrap observation text the way the agent sees it. */
export const wrapInfo = (text: string): string => `<info>${text}</info>`;

/**
 * Cut text longer than `limit` characters in the middle, keeping its beginning and its end around a
 * marker that says how much was removed (the start and the end of a long result carry the most).
 */
export const truncateMiddle = (text: string, limit: number): string => {
  const chars = Array.from(text);
  if (chars.length <= limit) return text;
  const head = Math.ceil(limit / 2);
  const tail = limit - head;
  const removed = chars.length - limit;
  return `${chars.slice(0, head).join("")}\n…[${removed} characters truncated]…\n${tail > 0 ? chars.slice(chars.length - tail).join("") : ""}`;
};

/** Content of every `<tag>…</tag>` block, in order (lazy, across newlines). */
export const allBlocks = (text: string, tag: string): ReadonlyArray<string> =>
  Array.from(text.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, "g")), (m) => m[1] ?? "");

/** Content of the last `<tag>…</tag>` block, trimmed, or undefined. */
export const lastBlock = (text: string, tag: string): string | undefined => {
  const blocks = allBlocks(text, tag);
  return blocks.length === 0 ? undefined : blocks[blocks.length - 1]?.trim();
};
