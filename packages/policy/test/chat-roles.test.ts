/**
 * The chat renderer's role mapping, fallback templates and turn-end token, on tiny generated models
 * (vocabulary only: these need no weights). Real models: test/real-models.test.ts.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTinyLlama, type TinyModelInfo } from "@workflow-r1/gguf";
import { Effect } from "effect";
import { getLlama, type Llama, type LlamaModel, type Token } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLlamaCppPolicy } from "../src/index.js";
import { chatOf } from "../src/llama/loading.js";

let dir: string;
let llama: Llama;
const models: LlamaModel[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "wr1-chat-"));
  llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });
});
afterAll(async () => {
  for (const m of models) await m.dispose();
  await rm(dir, { recursive: true, force: true });
});

let n = 0;
/** A tiny model with this chat template (false: none) and special tokens; its vocabulary loaded. */
const tiny = async (
  chatTemplate: string | false | undefined,
  specialTokens?: ReadonlyArray<string>,
): Promise<{ info: TinyModelInfo; model: LlamaModel }> => {
  const info = await createTinyLlama({
    path: join(dir, `m${n++}.gguf`),
    vocab: 300,
    dim: 16,
    layers: 1,
    heads: 2,
    kvHeads: 1,
    ffn: 32,
    seed: 3,
    tokenizer: {
      ...(chatTemplate === undefined ? {} : { chatTemplate }),
      ...(specialTokens ? { specialTokens } : {}),
    },
  });
  const model = await llama.loadModel({ modelPath: info.path, vocabOnly: true });
  models.push(model);
  return { info, model };
};

// The tiny model's BOS (and EOS) is <|endoftext|>, its first special token.
const GEMMA_SPECIALS = ["<|endoftext|>", "<start_of_turn>", "<end_of_turn>"];

const text = (model: LlamaModel, tokens: ArrayLike<number>) =>
  model.detokenize(Array.from(tokens) as Token[], true);

const system = { role: "system" as const, content: "Be brief." };
const user = { role: "user" as const, content: "Who wrote Hamlet?" };
const assistant = { role: "assistant" as const, content: "<tool> search: Hamlet </tool>" };
const tool = { role: "tool" as const, content: "Shakespeare." };

// Qwen2.5's way of handling tool messages (reduced): a tool turn is a user turn with <tool_response>.
const QWEN_LIKE =
  "{%- for message in messages %}" +
  "{%- if message.role == \"tool\" %}{{ '<|im_start|>user\\n<tool_response>\\n' + message.content + '\\n</tool_response><|im_end|>\\n' }}" +
  "{%- else %}{{ '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endif %}" +
  "{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}";

// A template that knows user and assistant only and raises on anything else.
const STRICT =
  "{%- for message in messages %}" +
  "{%- if message.role not in ['user', 'assistant'] %}{{ raise_exception('unknown role ' + message.role) }}{%- endif %}" +
  "{{ '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}" +
  "{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}";

// One that silently drops system messages.
const DROPS_SYSTEM =
  "{%- for message in messages %}{%- if message.role != 'system' %}" +
  "{{ '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}" +
  "{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}";

describe("ChatRenderer role mapping (tiny models)", () => {
  it("plain ChatML (the tiny model's default): system kept, tool rendered as a user turn", async () => {
    const { info, model } = await tiny(undefined);
    const chat = chatOf(model);
    expect(chat.info.chatTemplate).toBe("embedded");
    expect(chat.renderer.roles).toEqual({ system: "system", tool: "user" });
    expect(chat.info.chatRoles).toEqual({ system: "system", tool: "user" });
    expect(chat.info.turnEndToken).toBe(info.specialTokens["<|im_end|>"]);
    expect(text(model, chat.renderer.render([system, user, assistant, tool], true))).toBe(
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWho wrote Hamlet?<|im_end|>\n" +
        "<|im_start|>assistant\n<tool> search: Hamlet </tool><|im_end|>\n" +
        "<|im_start|>user\nShakespeare.<|im_end|>\n<|im_start|>assistant\n",
    );
  });

  it("keeps the tool role when the template handles it (Qwen2.5-style <tool_response>)", async () => {
    const { model } = await tiny(QWEN_LIKE);
    const { renderer } = chatOf(model);
    expect(renderer.roles).toEqual({ system: "system", tool: "tool" });
    const sampled = model.tokenize(assistant.content, false) as unknown as number[];
    expect(text(model, renderer.continuation([tool], sampled))).toBe(
      "<|im_end|>\n<|im_start|>user\n<tool_response>\nShakespeare.\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
    );
  });

  it("a template that raises on unknown roles: no crash, system folded, tool as user", async () => {
    const { info, model } = await tiny(STRICT);
    const { renderer, info: chat } = chatOf(model);
    expect(renderer.roles).toEqual({ system: "folded", tool: "user" });
    expect(chat.turnEndToken).toBe(info.specialTokens["<|im_end|>"]);
    const prompt = renderer.render([system, user], true);
    expect(text(model, prompt)).toBe(
      "<|im_start|>user\nBe brief.\n\nWho wrote Hamlet?<|im_end|>\n<|im_start|>assistant\n",
    );
    // The continuation renders the observation as a user turn right after the assistant turn.
    const sampled = model.tokenize(assistant.content, false) as unknown as number[];
    const cont = renderer.continuation([tool], sampled);
    const whole = renderer.render([system, user, assistant, tool], true);
    expect(Array.from(whole)).toEqual([...prompt, ...sampled, ...cont]);
    // The raw template does raise on these roles: the mapping is what avoids it.
    expect(() => renderer.render([{ role: "tool", content: "x" }], false)).not.toThrow();
  });

  it("a template that drops system messages: system folded into the first user message", async () => {
    const { model } = await tiny(DROPS_SYSTEM);
    const { renderer } = chatOf(model);
    expect(renderer.roles).toEqual({ system: "folded", tool: "user" });
    expect(text(model, renderer.render([system, user], false))).toBe(
      "<|im_start|>user\nBe brief.\n\nWho wrote Hamlet?<|im_end|>\n",
    );
    // A system message with no user message after it becomes a user turn of its own.
    expect(text(model, renderer.render([system], false))).toBe("<|im_start|>user\nBe brief.<|im_end|>\n");
  });

  it("a GGUF without a template but with <start_of_turn>/<end_of_turn> gets the Gemma template", async () => {
    const { info, model } = await tiny(false, GEMMA_SPECIALS);
    const chat = chatOf(model);
    expect(chat.info.chatTemplate).toBe("gemma");
    expect(chat.renderer.roles).toEqual({ system: "folded", tool: "user" });
    const eot = info.specialTokens["<end_of_turn>"];
    expect(chat.info.turnEndToken).toBe(eot);
    // llama.cpp counts <end_of_turn> as an end-of-generation token by its text: sampling stops there.
    expect(model.isEogToken(eot as Token)).toBe(true);
    expect(chat.endOfTurnTokens).toContain(eot);
    expect(chat.extraStopTokens).toEqual([]);
    const prompt = chat.renderer.render([system, user], true);
    // The template writes BOS once; the tokenizer adds none.
    expect(model.tokens.bosString).toBe("<|endoftext|>");
    expect(text(model, prompt)).toBe(
      "<|endoftext|><start_of_turn>user\nBe brief.\n\nWho wrote Hamlet?<end_of_turn>\n<start_of_turn>model\n",
    );
    expect(prompt.filter((t) => t === model.tokens.bos).length).toBe(1);
    // The model closed its turn with <end_of_turn> itself: only the newline and the next turns follow.
    const sampled = [...(model.tokenize(assistant.content, false) as unknown as number[]), eot];
    expect(text(model, chat.renderer.continuation([tool], sampled))).toBe(
      "\n<start_of_turn>user\nShakespeare.<end_of_turn>\n<start_of_turn>model\n",
    );
  });

  it("a GGUF without a template and without Gemma's markers falls back to ChatML", async () => {
    const { model } = await tiny(false);
    const chat = chatOf(model);
    expect(chat.info.chatTemplate).toBe("chatml");
    expect(chat.renderer.roles).toEqual({ system: "system", tool: "user" });
  });

  it("a template turn end that llama.cpp does not end generation at becomes a stop token", async () => {
    const template =
      "{%- for message in messages %}{{ '<|im_start|>' + message.role + '\\n' + message.content + '<|turn|>\\n' }}" +
      "{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}";
    const { info, model } = await tiny(template, ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|turn|>"]);
    const chat = chatOf(model);
    const turn = info.specialTokens["<|turn|>"];
    expect(model.isEogToken(turn as Token)).toBe(false);
    expect(chat.info.turnEndToken).toBe(turn);
    expect(chat.extraStopTokens).toEqual([turn]);
    expect(chat.endOfTurnTokens).toContain(turn);
  });
});

/**
 * Samples turns of a random tiny model with successive seeds until one ends at `token`: every turn
 * must hold no end-of-turn token but its last (sampling stopped at the first one drawn).
 */
const sampleUntilTurnEnd = async (
  p: Awaited<ReturnType<typeof createLlamaCppPolicy>>,
  token: number,
): Promise<{ seed: number; finishReason: string; stopString?: string }> => {
  const ends = new Set(p.info().endOfTurnTokens);
  const prompt = p.renderChat([user], { addGenerationPrompt: true });
  for (let seed = 1; seed <= 60; seed++) {
    const g = await Effect.runPromise(
      Effect.scoped(
        Effect.flatMap(p.openSequence(prompt), (s) => s.generate(new Int32Array(0), { maxTokens: 48, seed })),
      ),
    );
    const inside = Array.from(g.tokens.subarray(0, -1));
    expect(inside.some((t) => ends.has(t))).toBe(false);
    if (g.tokens[g.tokens.length - 1] === token)
      return { seed, finishReason: g.finishReason, ...(g.stopString ? { stopString: g.stopString } : {}) };
  }
  throw new Error(`no seed in 1..60 drew token ${token}`);
};

const policyOn = (path: string, engine: "native" | "node-llama-cpp") =>
  createLlamaCppPolicy({
    engine,
    modelPath: path,
    llama,
    gpu: false,
    contextSize: 128,
    sequences: 1,
    threads: 1,
  });

describe("PolicyInfo carries the chat mapping (both engines)", () => {
  it.each(["native", "node-llama-cpp"] as const)("%s engine", async (engine) => {
    const { info } = await tiny(false, GEMMA_SPECIALS);
    const p = await policyOn(info.path, engine);
    try {
      const got = p.info();
      expect(got.chatTemplate).toBe("gemma");
      expect(got.chatRoles).toEqual({ system: "folded", tool: "user" });
      const eot = info.specialTokens["<end_of_turn>"];
      expect(got.turnEndToken).toBe(eot);
      expect(p.detokenize(p.renderChat([user], { addGenerationPrompt: true }))).toBe(
        "<|endoftext|><start_of_turn>user\nWho wrote Hamlet?<end_of_turn>\n<start_of_turn>model\n",
      );
      // Sampling stops at <end_of_turn> when the model draws it (finish "eos", the token kept).
      expect((await sampleUntilTurnEnd(p, eot)).finishReason).toBe("eos");
    } finally {
      await p.dispose();
    }
  });

  it.each(["native", "node-llama-cpp"] as const)(
    "%s engine stops at a template turn end that is not an end-of-generation token for llama.cpp",
    async (engine) => {
      const template =
        "{%- for message in messages %}{{ '<|im_start|>' + message.role + '\\n' + message.content + '<|turn|>\\n' }}" +
        "{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}";
      const { info } = await tiny(template, ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|turn|>"]);
      const p = await policyOn(info.path, engine);
      try {
        const turn = info.specialTokens["<|turn|>"];
        expect(p.info().turnEndToken).toBe(turn);
        expect(p.info().endOfTurnTokens).toContain(turn);
        const end = await sampleUntilTurnEnd(p, turn);
        expect(end.finishReason).toBe("eos");
        expect(end.stopString).toBeUndefined();
      } finally {
        await p.dispose();
      }
    },
  );
});
