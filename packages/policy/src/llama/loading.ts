/**
 * What a loaded model is made of — the node-llama-cpp model and context, the free sequences, the
 * batch engine over the native context, the chat renderer — built once per (re)load. The native
 * engine's policy uses only {@link describeModel} (its node-llama-cpp model holds the vocabulary).
 */
import type { PolicyInfo } from "@workflow-r1/core";
import type { LlamaContext, LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import { ChatRenderer } from "./chat.js";
import { BatchEngine, type NativeContext } from "./engine.js";
import { nativeContextOf } from "./internals.js";

export interface Loaded {
  model: LlamaModel;
  context: LlamaContext;
  /** Sequences of the context not in use (node-llama-cpp reclaims disposed ids lazily, so we reuse them). */
  free: LlamaContextSequence[];
  native: NativeContext;
  engine: BatchEngine;
  renderer: ChatRenderer;
  info: PolicyInfo;
  modelPath: string;
}

/** The context's sequences and the engine that batches their decodes. */
export const partsOf = (
  context: LlamaContext,
  sequences: number,
  stats: { decodes: number; decodedTokens: number },
): Pick<Loaded, "free" | "native" | "engine"> => {
  const native = nativeContextOf(context);
  return {
    free: Array.from({ length: sequences }, () => context.getSequence()),
    native,
    engine: new BatchEngine(native, context.batchSize, stats),
  };
};

export const describeLoaded = (
  model: LlamaModel,
  context: LlamaContext,
  modelPath: string,
  parts: Pick<Loaded, "free" | "native" | "engine">,
): Loaded => ({ model, context, ...parts, ...describeModel(model, modelPath, context.contextSize) });

/** The chat renderer and the policy's info for a model (its vocabulary is all this needs). */
export const describeModel = (
  model: LlamaModel,
  modelPath: string,
  contextSize: number,
): Pick<Loaded, "renderer" | "info" | "modelPath"> => {
  const eog = new Set<number>();
  for (const t of [model.tokens.eos, model.tokens.eot]) if (t !== null) eog.add(t);
  const meta = model.fileInfo.metadata as { tokenizer?: { ggml?: { tokens?: ReadonlyArray<string> } } };
  const arch = model.fileInfo.architectureMetadata as { vocab_size?: number };
  const vocabSize = arch?.vocab_size ?? meta.tokenizer?.ggml?.tokens?.length ?? 0;
  for (let t = 0; t < vocabSize; t++) if (model.isEogToken(t as Token)) eog.add(t);
  const endOfTurnTokens = [...eog].sort((a, b) => a - b);
  const template = model.fileInfo.metadata?.tokenizer?.chat_template;
  const eotToken = model.tokens.eot ?? model.tokens.eos;
  const renderer = new ChatRenderer(typeof template === "string" ? template : undefined, {
    tokenize: (text, special) => model.tokenize(text, special) as unknown as number[],
    endOfTurnTokens,
    endOfTurnText: eotToken === null ? undefined : model.detokenize([eotToken as Token], true),
    bosText: model.tokens.bosString ?? undefined,
    eosText: model.tokens.eosString ?? undefined,
  });
  return {
    renderer,
    modelPath,
    info: { modelPath, contextSize, vocabularySize: vocabSize, endOfTurnTokens },
  };
};
