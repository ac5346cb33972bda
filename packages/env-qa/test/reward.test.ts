import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  answerScore,
  buildTranscript,
  extractAnswer,
  formatScore,
  rewardParts,
  topLevelTags,
  workflowR1Reward,
} from "../src/reward.js";

const GOOD_TOOL = "<think>I need the capital.</think>\n<tool>Search: capital of France</tool>";
const INFO = "<info>Paris is the capital of France.</info>";
const GOOD_END = "<think>It is Paris.</think>\n<answer>Paris</answer>";

describe("formatScore", () => {
  it.each<[string, string, number]>([
    ["think then answer", GOOD_END, 0],
    ["one full cycle", `${GOOD_TOOL}\n${INFO}\n${GOOD_END}`, 0],
    ["two cycles", `${GOOD_TOOL}\n${INFO}\n${GOOD_TOOL}\n${INFO}\n${GOOD_END}`, 0],
    ["text outside tags is ignored", `Sure!\n${GOOD_END}\nbye`, 0],
    ["no tags at all", "Paris", -0.5],
    ["answer without think", "<answer>Paris</answer>", -0.5],
    ["blank think", "<think>  \n </think><answer>Paris</answer>", -0.5],
    // Python's strip(): \x1c and U+0085 are whitespace, U+FEFF is not.
    ["think of Python whitespace is blank", "<think>\x1c\u0085</think><answer>Paris</answer>", -0.5],
    ["think of U+FEFF is not blank", "<think>\ufeff</think><answer>Paris</answer>", 0],
    ["blank tool", "<think>x</think><tool> </tool><info>y</info><think>z</think><answer>a</answer>", -0.5],
    ["tool without info", `${GOOD_TOOL}\n${GOOD_END}`, -0.5],
    ["ends after info", `${GOOD_TOOL}\n${INFO}`, -0.5],
    ["ends after think", "<think>hmm</think>", -0.5],
    ["answer not last", `${GOOD_END}\n<think>more</think>`, -0.5],
    ["two answers", `${GOOD_END}<answer>Paris</answer>`, -0.5],
    ["unknown top-level tag", `<plan>x</plan>${GOOD_END}`, -0.5],
    ["nested tags are content", "<think>a <b>bold</b> <tool>x</tool></think><answer>P</answer>", 0],
    ["unknown tag nested in info is content", `${GOOD_TOOL}<info><doc>x</doc></info>${GOOD_END}`, 0],
    // `</b>` does not match the open `think`, so it is ignored; `</think>` then closes think.
    ["unmatched closer ignored", "<think>a</b>b</think><answer>P</answer>", 0],
    ["unmatched closer at top level ignored", "</think><think>a</think><answer>P</answer>", 0],
    // `<b>` is never closed, so `</think>` does not match the top of the stack: think stays open.
    ["unclosed opener keeps parent open", "<think>a <b> b</think><answer>P</answer>", -0.5],
    ["<!…> is skipped", "<think>a <!-- c --> <!doctype x></think><answer>P</answer>", 0],
    ["opener name must start with a letter", "<think>1 <2 x> 3</think><answer>P</answer>", 0],
    // "< 4</think>" is one tag "4</think" (not an opener): the closer is swallowed.
    ["a stray < before a closer swallows it", "<think>3 < 4</think><answer>P</answer>", -0.5],
    ["opener with attributes", '<think id="1">a</think><answer>P</answer>', 0],
    // Tag text runs from "<" to the next ">" and is stripped, as in the authors' scanner.
    ["spaces inside tags are stripped", "< think >a</ think ><answer>P</answer>", 0],
    ["closer name is its first word", "<think>a</think junk><answer>P</answer>", 0],
    // "< b <think>" is one tag "b <think" (opener "b"), so the think opener is swallowed.
    ["a stray < swallows the next tag", "x < y <think>a</think><answer>P</answer>", -0.5],
    ["a stray > is text", "<think>a > b</think><answer>P</answer>", 0],
    ["empty <> and </> are ignored", "<><think>a</>b</think><answer>P</answer>", 0],
    ["answer right after info", `${GOOD_TOOL}\n${INFO}\n<answer>Paris</answer>`, -0.5],
    ["info without tool", `<think>x</think>${INFO}${GOOD_END}`, -0.5],
  ])("%s", (_name, transcript, expected) => {
    expect(formatScore(transcript)).toBe(expected);
  });

  it("collects top-level tags with raw content", () => {
    expect(topLevelTags("x<think>a<b>c</b></think>y<answer> P </answer>")).toEqual([
      { name: "think", content: "a<b>c</b>" },
      { name: "answer", content: " P " },
    ]);
  });
});

describe("answer score and reward", () => {
  it("takes the last answer anywhere, lazily, across newlines", () => {
    expect(extractAnswer("<answer>a</answer> <answer>\n b \n</answer>")).toBe("b");
    expect(extractAnswer("<answer>a<answer>b</answer>")).toBe("a<answer>b");
    expect(extractAnswer("<info><answer>x</answer></info>")).toBe("x");
    expect(extractAnswer("no answer")).toBeUndefined();
  });
  it.each<[string, string, ReadonlyArray<string>, number]>([
    ["missing answer", "<think>x</think>", ["Paris"], -1],
    ["empty answer", "<think>x</think><answer>  </answer>", ["Paris"], -1],
    ["exact after normalisation", "<answer>The  PARIS.</answer>", ["paris"], 1],
    ["any golden answer", "<answer>Lutetia</answer>", ["Paris", "lutetia"], 1],
    ["wrong", "<answer>London</answer>", ["Paris"], 0],
    ["article only as a word", "<answer>Theparis</answer>", ["paris"], 0],
    ["unicode word boundary", "<answer>the Ça</answer>", ["ça"], 1],
  ])("%s", (_name, transcript, golden, expected) => {
    expect(answerScore(transcript, golden)).toBe(expected);
  });

  it("reward = format + answer", () => {
    expect(workflowR1Reward(`${GOOD_TOOL}\n${INFO}\n${GOOD_END}`, ["Paris"])).toBe(1);
    expect(workflowR1Reward(`${GOOD_TOOL}\n${INFO}\n${GOOD_END}`, ["London"])).toBe(0);
    expect(workflowR1Reward("<answer>Paris</answer>", ["Paris"])).toBe(0.5);
    expect(workflowR1Reward("<answer>x</answer>", ["Paris"])).toBe(-0.5);
    expect(workflowR1Reward("nothing", ["Paris"])).toBe(-1.5);
    expect(workflowR1Reward(GOOD_TOOL, ["Paris"])).toBe(-1.5);
  });

  it("rewardParts records EM, sub-EM and F1", () => {
    const parts = rewardParts("<think>x</think><answer>Barack Obama</answer>", ["Obama", "president obama"]);
    expect(parts).toEqual({ format: 0, answer: 0, em: 0, subEm: 1, f1: 2 / 3 });
    expect(rewardParts("<think>x</think><answer>yes</answer>", ["no"]).f1).toBe(0);
    expect(rewardParts("<think>x</think>", ["no"])).toEqual({
      format: -0.5,
      answer: -1,
      em: 0,
      subEm: 0,
      f1: 0,
    });
  });

  it("buildTranscript interleaves actions and observations", () => {
    expect(buildTranscript(["a", "b"], ["<info>1</info>"])).toBe("a\n<info>1</info>\nb");
    expect(buildTranscript(["a"], ["<info>1</info>"])).toBe("a\n<info>1</info>");
  });

  it("never throws and stays in range on arbitrary transcripts", () => {
    const piece = fc.oneof(
      fc.constantFrom(
        "<think>",
        "</think>",
        "<tool>",
        "</tool>",
        "<info>",
        "</info>",
        "<answer>",
        "</answer>",
      ),
      fc.constantFrom("<", ">", "</", "<!", "<b>", "</b>", " ", "\n", "Paris", "the"),
      fc.string({ maxLength: 5 }),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 40 }), (pieces) => {
        const t = pieces.join("");
        const f = formatScore(t);
        const r = workflowR1Reward(t, ["Paris"]);
        return (f === 0 || f === -0.5) && [-1.5, -1, -0.5, 0, 0.5, 1].includes(r);
      }),
      { numRuns: 2000 },
    );
  });
});
