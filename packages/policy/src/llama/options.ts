/**
 * The LlamaCppPolicy's configuration, its shape, and what both of its engines share.
 */
import {
  ContextOverflowError,
  ModelLoadError,
  PolicyError,
  type PolicyShape,
  type WeightsSource,
} from "@workflow-r1/core";
import { Effect } from "effect";
import { type Llama, type LlamaModel, resolveModelFile, type Token } from "node-llama-cpp";
import { weightsLabel } from "../weights-label.js";
import type { ChatRenderer } from "./chat.js";

export type KvCacheType = "F32" | "F16" | "Q8_0" | "Q4_0";

export interface LlamaCppPolicyConfig {
  /** A GGUF path, or an `hf:<user>/<repo>:<quant>` URI (downloaded once into node-llama-cpp's cache; needs network). */
  readonly modelPath: string;
  /** `false` = CPU only. Default `"auto"`. */
  readonly gpu?: "auto" | "cuda" | "vulkan" | false;
  /** Tokens per sequence. Default 2048. */
  readonly contextSize?: number;
  /** Sequences that can be live at once (parallel rollouts). Default 8. */
  readonly sequences?: number;
  /** Tokens per `llama_decode` call. Default max(512, sequences). */
  readonly batchSize?: number;
  /** CPU threads. Default: all cores node-llama-cpp detects. */
  readonly threads?: number;
  /**
   * KV cache type. Default: llama.cpp's own (F16: half the memory, log-probs shift by ~3e-3);
   * `"F32"` makes sampler log-probs agree with an F32 learner to ~1e-6 at twice the cache memory.
   */
  readonly kvCacheType?: KvCacheType;
  /** Flash attention. Default false (exact agreement with the learner's attention). */
  readonly flashAttention?: boolean;
  /** A LoRA adapter applied from the start. */
  readonly lora?: { readonly path: string; readonly scale?: number };
  /** Share a Llama instance (e.g. across tests). */
  readonly llama?: Llama;
  /** node-llama-cpp log level. Default `"error"`. */
  readonly logLevel?: "error" | "warn" | "info" | "debug";
  /**
   * Which decode loop samples and scores. `"native"` (the default where its addon is built for the
   * libraries node-llama-cpp loaded, CPU or CUDA): the loop in C++ over libllama, one native call per
   * chunk of decode steps for all sequences. `"node-llama-cpp"`: node-llama-cpp's batched context API
   * with one native sampling call per sequence per token (the fallback, e.g. on Vulkan).
   */
  readonly engine?: "native" | "node-llama-cpp";
}

/** The policy plus what tests and benchmarks need to look inside. */
export interface LlamaCppPolicyShape extends PolicyShape {
  /** The decode loop in use (see {@link LlamaCppPolicyConfig.engine}). */
  readonly engine: "native" | "node-llama-cpp";
  /** Tokens decoded so far (input tokens), to check that prefixes are reused. */
  readonly evaluatedTokens: () => number;
  /** `llama_decode` calls so far: concurrent sequences share one call per step. */
  readonly decodeCalls: () => number;
  /** The node-llama-cpp model (tokenizer and metadata; the node-llama-cpp engine also decodes with it). */
  readonly model: () => LlamaModel;
}

export type DisposablePolicy = LlamaCppPolicyShape & { readonly dispose: () => Promise<void> };

export const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Typed errors pass through; anything else becomes a PolicyError naming the operation. */
export const policyErrorOf = (what: string) => (e: unknown) =>
  e instanceof ContextOverflowError || e instanceof PolicyError
    ? e
    : new PolicyError({ message: `${what}: ${messageOf(e)}`, cause: e });

/** A model file for node-llama-cpp: a path, or an `hf:` URI resolved into its cache. */
export const loadLlamaModel = async (
  llama: Llama,
  path: string,
  options: { readonly vocabOnly?: boolean } = {},
): Promise<{ model: LlamaModel; modelPath: string }> => {
  let modelPath = path;
  try {
    if (path.startsWith("hf:")) modelPath = await resolveModelFile(path);
    const model = await llama.loadModel({ modelPath, ...options });
    return { model, modelPath };
  } catch (e) {
    throw new ModelLoadError({ message: `cannot load model ${path}: ${messageOf(e)}`, path, cause: e });
  }
};

/** Tokenizer and chat rendering, from the model (and its renderer) loaded now. */
export const textMethods = (
  current: () => { readonly model: LlamaModel; readonly renderer: ChatRenderer },
): Pick<PolicyShape, "tokenize" | "detokenize" | "renderChat" | "renderContinuation"> => ({
  tokenize: (text, options) =>
    Int32Array.from(current().model.tokenize(text, options?.special ?? false) as unknown as number[]),
  detokenize: (tokens) => current().model.detokenize(Array.from(tokens) as Token[], true),
  renderChat: (messages, options) =>
    current().renderer.render(messages, options?.addGenerationPrompt ?? false),
  renderContinuation: (messages, lastTokens) => current().renderer.continuation(messages, lastTokens),
});

/** A reload needs every sequence closed (their KV cells belong to the weights being replaced). */
export const openSequencesError = (open: number) =>
  new Error(`${open} sequence(s) are still open; close them (end their scopes) before reloading`);

/** A failed reload as a ModelLoadError naming the weights. */
export const reloadFailure = (weights: WeightsSource) => (e: unknown) =>
  e instanceof ModelLoadError
    ? e
    : new ModelLoadError({
        message: `cannot reload ${weights.kind} ${weightsLabel(weights)}: ${messageOf(e)}`,
        path: weightsLabel(weights),
        cause: e,
      });

/** Tokens that fit one sequence's context and the vocabulary; the messages name the operation. */
export const checkTokens = (
  tokens: Int32Array,
  limits: { readonly contextSize: number; readonly vocabularySize: number },
  lengthLabel: string,
  tokenLabel: string,
) =>
  Effect.gen(function* () {
    const { contextSize, vocabularySize } = limits;
    if (tokens.length > contextSize)
      return yield* new ContextOverflowError({
        message: `${lengthLabel} ${tokens.length} tokens, the context holds ${contextSize} per sequence`,
        needed: tokens.length,
        contextSize,
      });
    for (const t of tokens)
      if (t < 0 || t >= vocabularySize)
        return yield* new PolicyError({
          message: `${tokenLabel} ${t} is outside the vocabulary (${vocabularySize})`,
        });
  });

/** `score(tokens, from)`'s input checks, shared by both engines: a `from` in [1, length], tokens that fit. */
export const checkScore = (
  tokens: Int32Array,
  from: number,
  limits: { readonly contextSize: number; readonly vocabularySize: number },
) =>
  Effect.gen(function* () {
    if (from < 1 || from > tokens.length)
      return yield* new PolicyError({ message: `score: from must be in [1, ${tokens.length}], got ${from}` });
    yield* checkTokens(tokens, limits, "score needs", "score: token");
  });
