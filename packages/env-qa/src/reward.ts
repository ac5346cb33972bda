/**
 * The Workflow-R1 reward, with the authors' semantics: format score (0 or -0.5) + answer score
 * (1 exact match, 0 wrong, -1 missing). Computed over the transcript: the assistant turns in order
 * with each observation, wrapped as `<info>…</info>`, between them.
 */
import { exactMatch, f1Score, pySplit, pyStrip, subExactMatch } from "./metrics.js";

/** A top-level tag of the transcript with its raw content (nested tags are content). */
export interface TopLevelTag {
  readonly name: string;
  readonly content: string;
}

const STARTS_WITH_LETTER = /^\p{L}/u;

/**
 * Scan the transcript's tags with a stack, as the authors' scanner does: from each `<`, the tag runs
 * to the next `>` (its text is stripped). An opener is `<name …>` whose name (up to the first
 * whitespace) starts with a letter; `<!…>` is skipped; a closer `</name>` counts only when it matches
 * the most recently opened unclosed tag (otherwise it is ignored, so an opener that is never closed
 * keeps its parent open). A pair closed when the stack empties is a top-level tag.
 */
export const topLevelTags = (transcript: string): ReadonlyArray<TopLevelTag> => {
  const tags: TopLevelTag[] = [];
  const stack: Array<{ readonly name: string; readonly contentStart: number }> = [];
  let i = 0;
  while (i < transcript.length) {
    if (transcript[i] !== "<") {
      i++;
      continue;
    }
    const end = transcript.indexOf(">", i);
    if (end < 0) {
      i++;
      continue;
    }
    const body = pyStrip(transcript.slice(i + 1, end));
    if (body.startsWith("/")) {
      const name = pySplit(body.slice(1))[0];
      const top = stack[stack.length - 1];
      if (name !== undefined && top !== undefined && top.name === name) {
        stack.pop();
        if (stack.length === 0) tags.push({ name, content: transcript.slice(top.contentStart, i) });
      }
    } else if (body !== "" && !body.startsWith("!")) {
      const name = pySplit(body)[0];
      if (name !== undefined && STARTS_WITH_LETTER.test(name)) stack.push({ name, contentStart: end + 1 });
    }
    i = end + 1;
  }
  return tags;
};

const ALLOWED = new Set(["think", "tool", "info", "answer"]);
const FORMAT_PENALTY = -0.5;

/**
 * Format score: 0 when the top-level tags run `(think tool info)* think answer` with non-blank
 * think and tool contents and the answer last; -0.5 otherwise (no tags, an unknown top-level tag,
 * any other order, or no final answer).
 */
export const formatScore = (transcript: string): number => {
  const tags = topLevelTags(transcript);
  if (tags.length === 0 || tags.some((t) => !ALLOWED.has(t.name))) return FORMAT_PENALTY;
  let expect: "think" | "tool-or-answer" | "info" | "end" = "think";
  for (const tag of tags) {
    switch (expect) {
      case "think":
        if (tag.name !== "think" || pyStrip(tag.content) === "") return FORMAT_PENALTY;
        expect = "tool-or-answer";
        break;
      case "tool-or-answer":
        if (tag.name === "answer") expect = "end";
        else if (tag.name === "tool" && pyStrip(tag.content) !== "") expect = "info";
        else return FORMAT_PENALTY;
        break;
      case "info":
        if (tag.name !== "info") return FORMAT_PENALTY;
        expect = "think";
        break;
      case "end":
        return FORMAT_PENALTY;
    }
  }
  return expect === "end" ? 0 : FORMAT_PENALTY;
};

const ANSWER = /<answer>([\s\S]*?)<\/answer>/g;

/** The last non-overlapping `<answer>…</answer>` of the transcript, trimmed; undefined when absent. */
export const extractAnswer = (transcript: string): string | undefined => {
  let last: string | undefined;
  for (const match of transcript.matchAll(ANSWER)) last = match[1];
  return last === undefined ? undefined : pyStrip(last);
};

/** Answer score: -1 when there is no (or an empty) answer, 1 on exact match, else 0. */
export const answerScore = (transcript: string, goldenAnswers: ReadonlyArray<string>): number => {
  const answer = extractAnswer(transcript);
  if (answer === undefined || answer === "") return -1;
  return exactMatch(answer, goldenAnswers);
};

export interface RewardParts {
  readonly format: number;
  readonly answer: number;
  readonly em: number;
  readonly subEm: number;
  readonly f1: number;
}

/** Every component: format + answer make the reward; EM, sub-EM and F1 are recorded for analysis. */
export const rewardParts = (transcript: string, goldenAnswers: ReadonlyArray<string>): RewardParts => {
  const prediction = extractAnswer(transcript);
  const format = formatScore(transcript);
  const answer = prediction === undefined || prediction === "" ? -1 : exactMatch(prediction, goldenAnswers);
  const p = prediction ?? "";
  return {
    format,
    answer,
    em: prediction === undefined ? 0 : exactMatch(p, goldenAnswers),
    subEm: prediction === undefined ? 0 : subExactMatch(p, goldenAnswers),
    f1: prediction === undefined ? 0 : f1Score(p, goldenAnswers),
  };
};

/** Reward = format score + answer score, in {-1.5, -1, -0.5, 0, 0.5, 1}. */
export const workflowR1Reward = (transcript: string, goldenAnswers: ReadonlyArray<string>): number =>
  formatScore(transcript) + answerScore(transcript, goldenAnswers);

/**
 * The transcript of an episode: the assistant turns in order with each observation (already wrapped
 * as `<info>…</info>`) between them, joined by newlines.
 */
export const buildTranscript = (
  actions: ReadonlyArray<string>,
  observations: ReadonlyArray<string>,
): string => {
  const parts: string[] = [];
  actions.forEach((action, i) => {
    parts.push(action);
    const observation = observations[i];
    if (observation !== undefined) parts.push(observation);
  });
  return parts.join("\n");
};
