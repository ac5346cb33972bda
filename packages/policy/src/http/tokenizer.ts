/**
 * Local tokenizer and chat template for the HTTP policy. `PolicyShape.tokenize`, `detokenize` and
 * `renderChat` are synchronous, so they cannot go over HTTP: we load the same GGUF's vocabulary
 * (no weights, `vocabOnly`) with node-llama-cpp and render its `tokenizer.chat_template` with the
 * package's `ChatRenderer` (@huggingface/jinja), exactly as LlamaCppPolicy does.
 */

import type { PolicyShape } from "@workflow-r1/core";
import { getLlama, type Llama, LlamaLogLevel, type LlamaModel, type Token } from "node-llama-cpp";
import { ChatRenderer } from "../llama/chat.js";

/** The policy's text side (same signatures as core's `PolicyShape`), served locally from the GGUF. */
export interface LocalTokenizer
  extends Pick<PolicyShape, "tokenize" | "detokenize" | "renderChat" | "renderContinuation"> {
  readonly modelPath: string;
  readonly vocabularySize: number;
  readonly trainContextSize: number;
  readonly endOfTurnTokens: ReadonlyArray<number>;
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
    tokenizer?: { chat_template?: unknown; ggml?: { tokens?: ReadonlyArray<string> } };
  };
  const arch = model.fileInfo.architectureMetadata as { vocab_size?: number } | undefined;
  const vocabularySize = arch?.vocab_size ?? metadata.tokenizer?.ggml?.tokens?.length ?? 0;
  // Same end-of-turn set and chat rendering as LlamaCppPolicy, so both policies give a
  // conversation the same tokens (message contents are never parsed as special tokens).
  const endOfTurn = new Set<number>();
  for (const t of [model.tokens.eos, model.tokens.eot]) if (t !== null) endOfTurn.add(t);
  for (let t = 0; t < vocabularySize; t++) if (model.isEogToken(t as Token)) endOfTurn.add(t);
  const eotToken = model.tokens.eot ?? model.tokens.eos;
  const template = metadata.tokenizer?.chat_template;
  const renderer = new ChatRenderer(typeof template === "string" ? template : undefined, {
    tokenize: (text, special) => model.tokenize(text, special) as unknown as number[],
    endOfTurnTokens: [...endOfTurn].sort((a, b) => a - b),
    ...(eotToken === null ? {} : { endOfTurnText: model.detokenize([eotToken], true) }),
    ...(model.tokens.bosString ? { bosText: model.tokens.bosString } : {}),
    ...(model.tokens.eosString ? { eosText: model.tokens.eosString } : {}),
  });

  const asciiIds = model.tokenize("a", false);
  if (asciiIds.length !== 1) throw new Error(`${modelPath}: the vocabulary has no single token for "a"`);

  return {
    modelPath,
    vocabularySize,
    trainContextSize: model.trainContextSize,
    endOfTurnTokens: [...endOfTurn].sort((a, b) => a - b),
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
