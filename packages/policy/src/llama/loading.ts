/**
 * What a loaded model is made of — the node-llama-cpp model and context, the free sequences, the
 * batch engine over the native context, the chat renderer — built once per (re)load. The native
 * engine's policy uses only {@link describeModel} (its node-llama-cpp model holds the vocabulary).
 */
import type { PolicyInfo } from "@workflow-r1/core";
import type { LlamaContext, LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import { ChatRenderer, chatTemplateFor } from "./chat.js";
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
  /** Tokens that end a turn besides llama.cpp's end-of-generation ones (see {@link ModelChat}). */
  extraStopTokens: ReadonlyArray<number>;
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

/** What the text side needs from a model's vocabulary: chat renderer, end-of-turn tokens, vocabulary size. */
export interface ModelChat {
  readonly renderer: ChatRenderer;
  /** End-of-generation tokens, plus the template's turn end when llama.cpp does not count it as one. */
  readonly endOfTurnTokens: ReadonlyArray<number>;
  /** The template's turn end when it is not an end-of-generation token for llama.cpp (sampling must stop there too). */
  readonly extraStopTokens: ReadonlyArray<number>;
  readonly vocabularySize: number;
  readonly info: Pick<PolicyInfo, "endOfTurnTokens" | "turnEndToken" | "chatRoles" | "chatTemplate">;
}

/** The chat side of a loaded model (LlamaCppPolicy's engines and HttpPolicy's local tokenizer share it). */
export const chatOf = (model: LlamaModel): ModelChat => {
  const eog = new Set<number>();
  for (const t of [model.tokens.eos, model.tokens.eot]) if (t !== null) eog.add(t);
  const meta = model.fileInfo.metadata as unknown as {
    tokenizer?: { chat_template?: unknown; ggml?: { tokens?: ReadonlyArray<string> } };
  };
  const arch = model.fileInfo.architectureMetadata as { vocab_size?: number } | undefined;
  const vocabularySize = arch?.vocab_size ?? meta.tokenizer?.ggml?.tokens?.length ?? 0;
  for (let t = 0; t < vocabularySize; t++) if (model.isEogToken(t as Token)) eog.add(t);
  const embedded = meta.tokenizer?.chat_template;
  const { source, kind } = chatTemplateFor(typeof embedded === "string" ? embedded : undefined, (text) => {
    const ids = model.tokenize(text, true);
    return ids.length === 1 && model.isSpecialToken(ids[0]);
  });
  const fallback = model.tokens.eot ?? model.tokens.eos;
  const renderer = new ChatRenderer(
    source,
    {
      tokenize: (text, special) => model.tokenize(text, special) as unknown as number[],
      tokenText: (token) => model.detokenize([token as Token], true),
      isSpecial: (token) => model.isSpecialToken(token as Token),
      endOfTurnTokens: [...eog].sort((a, b) => a - b),
      ...(fallback === null ? {} : { fallbackTurnEnd: fallback }),
      ...(model.tokens.bosString ? { bosText: model.tokens.bosString } : {}),
      ...(model.tokens.eosString ? { eosText: model.tokens.eosString } : {}),
    },
    kind,
  );
  const turnEnd = renderer.turnEndToken;
  const extraStopTokens = turnEnd !== undefined && !eog.has(turnEnd) ? [turnEnd] : [];
  const endOfTurnTokens = [...eog, ...extraStopTokens].sort((a, b) => a - b);
  return {
    renderer,
    endOfTurnTokens,
    extraStopTokens,
    vocabularySize,
    info: {
      endOfTurnTokens,
      ...(turnEnd === undefined ? {} : { turnEndToken: turnEnd }),
      chatRoles: renderer.roles,
      chatTemplate: kind,
    },
  };
};

/** The chat renderer and the policy's info for a model (its vocabulary is all this needs). */
export const describeModel = (
  model: LlamaModel,
  modelPath: string,
  contextSize: number,
): Pick<Loaded, "renderer" | "info" | "modelPath" | "extraStopTokens"> => {
  const chat = chatOf(model);
  return {
    renderer: chat.renderer,
    modelPath,
    extraStopTokens: chat.extraStopTokens,
    info: { modelPath, contextSize, vocabularySize: chat.vocabularySize, ...chat.info },
  };
};
