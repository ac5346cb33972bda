/**
 * Local tokenizer and chat template for the HTTP policy. `PolicyShape.tokenize`, `detokenize` and
 * `renderChat` are synchronous, so they cannot go over HTTP: we load the same GGUF's vocabulary
 * (no weights, `vocabOnly`) with node-llama-cpp and render its `tokenizer.chat_template` with
 * @huggingface/jinja (the Jinja engine node-llama-cpp itself uses), which keeps the `tool` role.
 */

import { Template } from "@huggingface/jinja";
import type { ChatMessage } from "@workflow-r1/core";
import { getLlama, type Llama, LlamaLogLevel, type LlamaModel, type Token } from "node-llama-cpp";

/** Used when the GGUF carries no chat template (e.g. tiny test models): ChatML. */
export const FALLBACK_CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** Stand-in assistant text used to find where an assistant turn's content ends in the template. */
const SENTINEL = "\u0001WR1_SENTINEL\u0001";

export interface LocalTokenizer {
  readonly modelPath: string;
  readonly vocabularySize: number;
  readonly trainContextSize: number;
  readonly endOfTurnTokens: ReadonlyArray<number>;
  readonly tokenize: (text: string, options?: { readonly special?: boolean }) => Int32Array;
  readonly detokenize: (tokens: ArrayLike<number>) => string;
  readonly renderChat: (
    messages: ReadonlyArray<ChatMessage>,
    options?: { readonly addGenerationPrompt?: boolean },
  ) => Int32Array;
  readonly renderContinuation: (
    messages: ReadonlyArray<ChatMessage>,
    lastTokens: ArrayLike<number>,
  ) => Int32Array;
  /** A token whose text is one plain ASCII letter: forced in logprob probes so the server reports them. */
  readonly asciiToken: number;
  readonly dispose: () => Promise<void>;
}

const toInt32 = (tokens: ReadonlyArray<Token> | ReadonlyArray<number>): Int32Array =>
  Int32Array.from(tokens as number[]);

export const loadLocalTokenizer = async (modelPath: string): Promise<LocalTokenizer> => {
  const llama: Llama = await getLlama({ gpu: false, logLevel: LlamaLogLevel.error });
  let model: LlamaModel;
  try {
    model = await llama.loadModel({ modelPath, vocabOnly: true });
  } catch (error) {
    await llama.dispose();
    throw error;
  }
  const metadata = model.fileInfo.metadata as unknown as {
    tokenizer?: {
      chat_template?: string;
      ggml?: { add_bos_token?: boolean; tokens?: ReadonlyArray<string> };
    };
  };
  const templateSource = metadata.tokenizer?.chat_template ?? FALLBACK_CHAT_TEMPLATE;
  const template = new Template(templateSource);
  const addBos = metadata.tokenizer?.ggml?.add_bos_token ?? true;
  const bos = model.tokens.bos;
  const bosText = bos === null ? "" : model.detokenize([bos], true);
  const eos = model.tokens.eos;
  const eosText = eos === null ? "" : model.detokenize([eos], true);

  const endOfTurn = new Set<number>();
  if (eos !== null) endOfTurn.add(eos);
  if (model.tokens.eot !== null) endOfTurn.add(model.tokens.eot);
  for (const marker of ["<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>"]) {
    const ids = model.tokenize(marker, true);
    // Only a marker that is one special token can end a turn by itself.
    if (ids.length === 1 && model.detokenize(ids, true) === marker && model.detokenize(ids, false) === "") {
      endOfTurn.add(ids[0] as number);
    }
  }

  const render = (messages: ReadonlyArray<ChatMessage>, addGenerationPrompt: boolean): string =>
    template.render({
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      add_generation_prompt: addGenerationPrompt,
      bos_token: bosText,
      eos_token: eosText,
    });

  const tokenizeText = (text: string, special: boolean): Int32Array => toInt32(model.tokenize(text, special));

  const withBos = (tokens: Int32Array): Int32Array => {
    if (!addBos || bos === null || tokens[0] === bos) return tokens;
    const out = new Int32Array(tokens.length + 1);
    out[0] = bos;
    out.set(tokens, 1);
    return out;
  };

  const asciiIds = model.tokenize("a", false);
  if (asciiIds.length !== 1) throw new Error(`${modelPath}: the vocabulary has no single token for "a"`);

  return {
    modelPath,
    vocabularySize: metadata.tokenizer?.ggml?.tokens?.length ?? 0,
    trainContextSize: model.trainContextSize,
    endOfTurnTokens: [...endOfTurn],
    tokenize: (text, options) => tokenizeText(text, options?.special ?? false),
    detokenize: (tokens) => model.detokenize(Array.from(tokens) as Token[], false),
    renderChat: (messages, options) =>
      withBos(tokenizeText(render(messages, options?.addGenerationPrompt ?? false), true)),
    renderContinuation: (messages, lastTokens) => {
      // Render [user, assistant(SENTINEL), ...messages] and keep what follows the sentinel: the
      // template's own end-of-turn text, the new messages and the next assistant header.
      const prefix: ChatMessage[] = [
        { role: "user", content: "u" },
        { role: "assistant", content: SENTINEL },
      ];
      const full = render([...prefix, ...messages], true);
      const at = full.indexOf(SENTINEL);
      if (at < 0) throw new Error("chat template does not render assistant content verbatim");
      const suffix = tokenizeText(full.slice(at + SENTINEL.length), true);
      const last = lastTokens.length > 0 ? lastTokens[lastTokens.length - 1] : undefined;
      // The model already closed its turn: do not close it twice.
      if (last !== undefined && endOfTurn.has(last) && suffix[0] === last) return suffix.slice(1);
      return suffix;
    },
    asciiToken: asciiIds[0] as number,
    dispose: async () => {
      await model.dispose();
      await llama.dispose();
    },
  };
};
