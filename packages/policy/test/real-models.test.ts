/**
 * Chat rendering on the real pretrained models (tools/fetch-models.sh puts them in .cache/models; a
 * missing file fails these tests with the command to run): the role mapping each template gets, the
 * prompt text each model's format expects, the turn-end token, and token in / token out over a
 * two-turn conversation sampled greedily on CPU.
 */
import type { Generation } from "@workflow-r1/core";
import { realModelPath } from "@workflow-r1/gguf";
import { Effect } from "effect";
import { getLlama, type Llama } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLlamaCppPolicy } from "../src/index.js";

type Policy = Awaited<ReturnType<typeof createLlamaCppPolicy>>;

let llama: Llama;
beforeAll(async () => {
  llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });
});

const open = (name: "smollm2" | "gemma3", engine: "native" | "node-llama-cpp") =>
  createLlamaCppPolicy({
    engine,
    modelPath: realModelPath(name),
    llama,
    gpu: false,
    contextSize: 512,
    sequences: 1,
    // One thread: on a shared 2-core machine llama.cpp's spinning barrier makes two much slower.
    threads: 1,
  });

const system = {
  role: "system" as const,
  content: "You answer questions. To look something up, write <tool>search: your query</tool> and wait.",
};
const user = { role: "user" as const, content: "Who wrote the play Hamlet? Search first." };
const observation = { role: "tool" as const, content: "Hamlet is a tragedy written by William Shakespeare." };

const greedy = (maxTokens: number) => ({ maxTokens, temperature: 0, stop: ["</tool>"] });

/** Rollout's way: prompt → turn 1 → continuation with the observation → turn 2, on one sequence. */
const converse = (p: Policy) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const prompt = p.renderChat([system, user], { addGenerationPrompt: true });
        const seq = yield* p.openSequence(prompt);
        const first: Generation = yield* seq.generate(new Int32Array(0), greedy(40));
        const cont = p.renderContinuation([observation], first.tokens);
        const second: Generation = yield* seq.generate(cont, greedy(40));
        return { prompt, first, cont, second, held: seq.tokens() };
      }),
    ),
  );

const sampleOnce = (p: Policy, prompt: Int32Array, maxTokens: number) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.flatMap(p.openSequence(prompt), (s) =>
        s.generate(new Int32Array(0), { maxTokens, temperature: 0 }),
      ),
    ),
  );

interface Format {
  name: "smollm2" | "gemma3";
  turnEnd: string;
  roles: { system: "system" | "folded"; tool: "tool" | "user" };
  template: "embedded" | "gemma";
  /** The prompt for [system, user] with a generation prompt, as the model's format writes it. */
  prompt: string;
  /** What follows an assistant turn closed by the model itself: the observation, then the next header. */
  continuation: string;
  /**
   * How the two greedy turns of the conversation end (measured, pinned so that both paths stay
   * covered): SmolLM2 closes its turns with <|im_end|> itself, the pretrained Gemma runs to the stop string.
   */
  ends: ["eos" | "stop", "eos" | "stop"];
}

const formats: Format[] = [
  {
    name: "smollm2",
    turnEnd: "<|im_end|>",
    roles: { system: "system", tool: "user" },
    template: "embedded",
    prompt:
      `<|im_start|>system\n${system.content}<|im_end|>\n` +
      `<|im_start|>user\n${user.content}<|im_end|>\n<|im_start|>assistant\n`,
    continuation: `\n<|im_start|>user\n${observation.content}<|im_end|>\n<|im_start|>assistant\n`,
    ends: ["eos", "eos"],
  },
  {
    name: "gemma3",
    turnEnd: "<end_of_turn>",
    roles: { system: "folded", tool: "user" },
    template: "gemma",
    prompt: `<bos><start_of_turn>user\n${system.content}\n\n${user.content}<end_of_turn>\n<start_of_turn>model\n`,
    continuation: `\n<start_of_turn>user\n${observation.content}<end_of_turn>\n<start_of_turn>model\n`,
    ends: ["stop", "stop"],
  },
];

describe.each(formats)("$name (CPU)", (f) => {
  let p: Policy;
  let turnEnd: number;
  beforeAll(async () => {
    p = await open(f.name, "native");
    const ids = p.tokenize(f.turnEnd, { special: true });
    expect(ids.length).toBe(1);
    turnEnd = ids[0];
  });
  afterAll(async () => {
    await p?.dispose();
  });

  it("maps the roles the template supports and names its turn-end token", () => {
    const info = p.info();
    expect(info.chatTemplate).toBe(f.template);
    expect(info.chatRoles).toEqual(f.roles);
    expect(info.turnEndToken).toBe(turnEnd);
    // Not merely the lowest end-of-generation id (SmolLM2's is <|endoftext|> = 0).
    expect(info.endOfTurnTokens).toContain(turnEnd);
  });

  it("renders the prompt and an observation turn in the model's own format (one BOS at most)", () => {
    const prompt = p.renderChat([system, user], { addGenerationPrompt: true });
    expect(p.detokenize(prompt)).toBe(f.prompt);
    const bos = p.tokenize("<bos>", { special: true });
    if (f.name === "gemma3") expect(prompt.filter((t) => t === bos[0]).length).toBe(1);
    const action = p.tokenize("<tool>search: Hamlet author</tool>");
    expect(p.detokenize(p.renderContinuation([observation], [...action, turnEnd]))).toBe(f.continuation);
    // Stopped on a stop string: the continuation closes the turn with the turn-end token first.
    const closing = p.renderContinuation([observation], action);
    expect(closing[0]).toBe(turnEnd);
    expect(p.detokenize(closing)).toBe(f.turnEnd + f.continuation);
  });

  it("token in, token out: prompt + sampled + continuation + sampled equals a fresh render, up to named differences", async () => {
    const { prompt, first, cont, second, held } = await converse(p);
    const accumulated = [...prompt, ...first.tokens, ...cont, ...second.tokens];
    // The sequence holds exactly these tokens: nothing was re-tokenized.
    expect(Array.from(held)).toEqual(accumulated);
    const closedByModel = (g: Generation) => g.tokens[g.tokens.length - 1] === turnEnd;
    const body = (g: Generation) => (closedByModel(g) ? g.tokens.subarray(0, -1) : g.tokens);
    const texts = [first, second].map((g) => p.detokenize(body(g)));
    expect([first.finishReason, second.finishReason]).toEqual(f.ends);
    // The continuation closes the first turn itself only when the model did not (stopped on </tool>).
    expect(cont[0] === turnEnd).toBe(!closedByModel(first));
    for (const [i, g] of [first, second].entries()) {
      if (g.finishReason === "eos") expect(closedByModel(g)).toBe(true);
      if (g.finishReason === "stop") expect(g.stopString).toBe("</tool>");
      // A possible difference, checked rather than assumed: sampled tokens that are not the canonical
      // tokenization of their text. These greedy turns are canonical.
      expect(Array.from(p.tokenize(texts[i])), `turn ${i + 1} is canonical`).toEqual(Array.from(body(g)));
    }
    const fresh = p.renderChat(
      [
        system,
        user,
        { role: "assistant", content: texts[0] },
        observation,
        { role: "assistant", content: texts[1] },
      ],
      { addGenerationPrompt: false },
    );
    // Named difference 2: a fresh render closes the last turn (turn end, if the model did not write
    // it, and the template's newline after it); the live sequence stops where sampling stopped.
    const tail = p.tokenize(`${closedByModel(second) ? "" : f.turnEnd}\n`, { special: true });
    expect(Array.from(fresh)).toEqual([...accumulated, ...tail]);
  });

  it("the turn-end token is an end-of-generation token for llama.cpp (sampling stops at it)", () => {
    expect(p.model().isEogToken(turnEnd as never)).toBe(true);
  });
});

// Gemma 3 270M here is the pretrained (not instruction-tuned) model: it never writes <end_of_turn>
// (measured: greedy and seeded turns ran to their budget), so only SmolLM2 can show a natural end.
// test/chat-roles.test.ts shows both engines stopping at a Gemma-style <end_of_turn> on a tiny model.
describe("SmolLM2-135M-Instruct's natural end of turn (CPU)", () => {
  it.each(["native", "node-llama-cpp"] as const)(
    "%s engine: a greedy turn ends with <|im_end|>, the turn-end token",
    async (engine) => {
      const p = await open("smollm2", engine);
      try {
        const turnEnd = p.info().turnEndToken;
        expect(turnEnd).toBe(p.tokenize("<|im_end|>", { special: true })[0]);
        const prompt = p.renderChat([{ role: "user", content: "What is 2+2? Answer with a number only." }], {
          addGenerationPrompt: true,
        });
        const g = await sampleOnce(p, prompt, 32);
        expect(g.finishReason).toBe("eos");
        expect(g.tokens[g.tokens.length - 1]).toBe(turnEnd);
        expect(p.detokenize(g.tokens)).toBe("2 + 2 = 4<|im_end|>");
      } finally {
        await p.dispose();
      }
    },
  );
});
