/**
 * Local tokenizer and chat template for the HTTP policy. `PolicyShape.tokenize`, `detokenize` and
 * `renderChat` are synchronous, so they cannot go over HTTP: we load the same GGUF's vocabulary
 * (no weights, `vocabOnly`) with node-llama-cpp and render its `tokenizer.chat_template` with the
 * package's `ChatRenderer` (@huggingface/jinja, with the same role mapping and fallback templates),
 * exactly as LlamaCppPolicy does.
 */

import type { PolicyInfo, PolicyShape } from "@workflow-r1/core";
import { getLlama, type Llama, LlamaLogLevel, type LlamaModel, type Token } from "node-llama-cpp";
import { chatOf } from "../llama/loading.js";

/** The policy's text side (same signatures as core's `PolicyShape`), served locally from the GGUF. */
export interface LocalTokenizer
  extends Pick<PolicyShape, "tokenize" | "detokenize" | "renderChat" | "renderContinuation"> {
  readonly modelPath: string;
  readonly vocabularySize: number;
  readonly trainContextSize: number;
  readonly endOfTurnTokens: ReadonlyArray<number>;
  /** The chat side of `PolicyInfo`: end-of-turn tokens, the template's turn end, roles, template source. */
  readonly chat: Pick<PolicyInfo, "endOfTurnTokens" | "turnEndToken" | "chatRoles" | "chatTemplate">;
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
  // Same end-of-turn set and chat rendering as LlamaCppPolicy, so both policies give a
  // conversation the same tokens (message contents are never parsed as special tokens).
  const chat = chatOf(model);
  const { renderer, vocabularySize } = chat;

  const asciiIds = model.tokenize("a", false);
  if (asciiIds.length !== 1) throw new Error(`${modelPath}: the vocabulary has no single token for "a"`);

  return {
    modelPath,
    vocabularySize,
    trainContextSize: model.trainContextSize,
    endOfTurnTokens: chat.endOfTurnTokens,
    chat: chat.info,
    tokenize: (text, options) => toInt32(model.tokenize(text, options?.special ?? false)),
    detokenize: (tokens) => model.detokenize(Array.from(tokens) as Token[], true),
    renderChat: (messages, options) => renderer.render(messages, options?.addGenerationPrompt ?? false),
    renderContinuation: (messages, lastTokens) => renderer.continuation(messages, lastTokens),
    asciiToken: asciiIds[0] as number,
    dispose: async () => {
      await model.dispose();
      await llama.dispose();
    },
  };
};
