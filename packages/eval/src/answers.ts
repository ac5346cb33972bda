/**
 * Reading answers out of model output, and self-consistency voting.
 */
import { extractAnswer as lastAnswer } from "@workflow-r1/env-qa";
import { normalizeAnswer } from "./metrics.js";

/**
 * The text of the last `<answer>…</answer>` in `text`, read by the training reward's own function
 * (env-qa's `extractAnswer`: Python-`strip` whitespace), so evaluation scores exactly as training;
 * null when there is none or it is empty.
 */
export const extractAnswer = (text: string): string | null => {
  const answer = lastAnswer(text);
  return answer === undefined || answer === "" ? null : answer;
};

/** `direct` format: exactly one non-empty answer and nothing but whitespace around it. */
export const directFormatValid = (text: string): boolean =>
  /^\s*<answer>(?:(?!<\/?answer>)[\s\S])*\S(?:(?!<\/?answer>)[\s\S])*<\/answer>\s*$/.test(text);

/** `cot` format: one `<think>…</think>` block, then exactly one non-empty answer at the end. */
export const cotFormatValid = (text: string): boolean => {
  const match = /^\s*<think>([\s\S]*?)<\/think>\s*<answer>([\s\S]*?)<\/answer>\s*$/.exec(text);
  if (!match) return false;
  const [, think, answer] = match;
  return (
    think!.trim().length > 0 && answer!.trim().length > 0 && !/<\/?(think|answer)>/.test(`${think}${answer}`)
  );
};

/**
 * Majority vote over predictions compared after answer normalisation (SQuAD-style). Ties go to the
 * answer seen first; missing answers (null) do not vote. Returns the first original spelling of
 * the winning answer, and how many samples voted for it.
 */
export const majorityVote = (
  predictions: ReadonlyArray<string | null>,
): { readonly prediction: string | null; readonly votes: number } => {
  const counts = new Map<string, { count: number; first: number; original: string }>();
  predictions.forEach((prediction, index) => {
    if (prediction === null) return;
    const key = normalizeAnswer(prediction);
    const entry = counts.get(key);
    if (entry) entry.count++;
    else counts.set(key, { count: 1, first: index, original: prediction });
  });
  let best: { count: number; first: number; original: string } | undefined;
  for (const entry of counts.values())
    if (!best || entry.count > best.count || (entry.count === best.count && entry.first < best.first))
      best = entry;
  return best ? { prediction: best.original, votes: best.count } : { prediction: null, votes: 0 };
};
