/**
 * The native sampling engine: its decode loop runs in C++ over libllama (native/engine.cpp). One
 * `llama_decode` per step serves every live sequence; sampling, the temperature-1 log-probability
 * of each sampled token, end-of-generation tokens, stop strings and token budgets are handled
 * natively, and JavaScript is called once per chunk of steps instead of once per sequence per
 * token. Sequences join between steps (continuous batching). It also scores token sequences
 * (teacher-forced log-probabilities) and swaps LoRA adapters without reloading the base model.
 *
 * `LlamaCppPolicy` runs on it by default; use it directly for raw generation without a tokenizer.
 */
import { ContextOverflowError, type Generation, PolicyError, type SamplingOptions } from "@workflow-r1/core";
import {
  type AddonFlavor,
  backendsDirectory,
  ggmlTypeOf,
  loadAddon,
  type NativeRequest,
  type NativeResult,
} from "./addon.js";

export interface NativeSamplerConfig {
  readonly modelPath: string;
  /** Which of node-llama-cpp's library sets to run on (must match what node-llama-cpp loaded). Default "cpu". */
  readonly flavor?: AddonFlavor;
  /** Parallel sequences (KV cache slots). Default 1. */
  readonly sequences?: number;
  /** Tokens each sequence may hold. Default 2048. */
  readonly contextPerSequence?: number;
  /** CPU threads of llama.cpp. Default 1. */
  readonly threads?: number;
  /** Layers offloaded to the GPU (0 = CPU; needs the "cuda" flavour). Default 0. */
  readonly gpuLayers?: number;
  /** Tokens one decode may hold (prompt chunks share it). Default 2048. */
  readonly batchSize?: number;
  /** KV cache type. Default llama.cpp's (F16); "F32" makes log-probabilities agree with an F32 learner to ~1e-5. */
  readonly kvCacheType?: keyof typeof ggmlTypeOf;
  /** Flash attention. Default false. */
  readonly flashAttention?: boolean;
  /**
   * One KV buffer that every sequence's attention spans (true) or one stream per sequence (false,
   * the default: attention over each sequence's own cells, so its cost does not grow with the number
   * of sequences; 1.6× faster at 64 sequences on the CPU, the same at 16).
   */
  readonly unifiedKv?: boolean;
  /** Decode steps per native call. Default 16. */
  readonly stepsPerCall?: number;
}

export interface NativeSamplerSequence {
  /** Every token the sequence holds (the last sampled token is held but not evaluated yet). */
  readonly tokens: () => Int32Array;
  /**
   * Evaluate `append`, then sample up to `maxTokens` tokens (like `PolicySequence.generate`). An
   * aborted `signal` ends the generation at the next decode step (the promise rejects).
   */
  readonly generate: (
    append: Int32Array,
    options: SamplingOptions,
    signal?: AbortSignal,
  ) => Promise<Generation>;
  /** Free the slot (its KV cells are dropped) once a generation in flight has ended. */
  readonly close: () => Promise<void>;
}

/** A LoRA adapter GGUF: a file, or its bytes in memory (no disk round trip). */
export type NativeLoraAdapter =
  | { readonly path: string; readonly scale?: number }
  | { readonly bytes: Uint8Array; readonly scale?: number };

export interface NativeSampler {
  readonly vocabularySize: number;
  readonly contextPerSequence: number;
  /** A sequence in a free slot; throws when all slots are in use. */
  readonly openSequence: (prompt: Int32Array) => NativeSamplerSequence;
  /** log p(tokens[i] | tokens[<i]) at temperature 1 for i in [from, tokens.length), in a free slot. */
  readonly score: (tokens: Int32Array, from: number) => Promise<Float32Array>;
  /** Apply a LoRA adapter (undefined removes it) once nothing runs; open sequences must be closed. */
  readonly setLora: (adapter: NativeLoraAdapter | undefined) => Promise<void>;
  /** `llama_decode` calls so far. */
  readonly decodeCalls: () => number;
  /** Tokens decoded so far (prompts, appended tokens, fed-back samples). */
  readonly decodedTokens: () => number;
  readonly dispose: () => Promise<void>;
}

/** Open the native engine on a GGUF (the model is loaded by llama.cpp; throws when it cannot be). */
export const createNativeSampler = (config: NativeSamplerConfig): NativeSampler => {
  const flavor = config.flavor ?? "cpu";
  const sequences = config.sequences ?? 1;
  const contextPerSequence = config.contextPerSequence ?? 2048;
  const native = new (loadAddon(flavor).NativeEngine)(config.modelPath, {
    backendsDir: backendsDirectory(flavor),
    contextPerSequence,
    sequences,
    threads: config.threads ?? 1,
    gpuLayers: config.gpuLayers ?? 0,
    batchSize: config.batchSize ?? 2048,
    cacheType: config.kvCacheType === undefined ? -1 : ggmlTypeOf[config.kvCacheType],
    flashAttention: config.flashAttention ?? false,
    unifiedKv: config.unifiedKv ?? false,
  });
  const { vocab } = native.info();
  const stepsPerCall = config.stepsPerCall ?? 16;
  // Lowest free slot first: live sequences stay on consecutive ids, which llama.cpp decodes in one ubatch.
  const free = Array.from({ length: sequences }, (_, i) => i);
  const waiting = new Map<number, { resolve: (r: NativeResult) => void; reject: (e: unknown) => void }>();
  let pump: Promise<void> | undefined;
  let disposed = false;

  // One driver loop: run chunks while any request waits. Requests join a chunk only when it starts
  // and a chunk ends at the first step in which a request finished. Before each chunk the loop lets
  // the event loop turn until two turns pass without a new request, so the sequences whose results
  // just arrived submit their next turn first (Effect resumes fibers with setImmediate): seeded runs
  // then decode the same batches, and round the same way, every time.
  let submitted = 0;
  const settle = async () => {
    for (let quiet = 0, seen = submitted; quiet < 2; ) {
      await new Promise((r) => setImmediate(r));
      quiet = submitted === seen ? quiet + 1 : 0;
      seen = submitted;
    }
  };
  const drive = async () => {
    try {
      while (waiting.size > 0) {
        await settle();
        const results = await native.run(stepsPerCall);
        for (const r of results) {
          waiting.get(r.id)?.resolve(r);
          waiting.delete(r.id);
        }
      }
    } catch (e) {
      for (const w of waiting.values()) w.reject(e);
      waiting.clear();
    } finally {
      pump = undefined;
    }
  };

  const request = (r: NativeRequest, signal?: AbortSignal) =>
    new Promise<NativeResult>((resolve, reject) => {
      if (disposed) throw new PolicyError({ message: "the native sampler was disposed" });
      if (signal?.aborted) throw new PolicyError({ message: "generation interrupted" });
      const id = native.submit(r);
      submitted++;
      const cancel = () => {
        if (!disposed) native.cancel(id);
      };
      signal?.addEventListener("abort", cancel, { once: true });
      waiting.set(id, {
        resolve: (result) => {
          signal?.removeEventListener("abort", cancel);
          if (result.finish === "cancelled") reject(new PolicyError({ message: "generation interrupted" }));
          else resolve(result);
        },
        reject: (e) => {
          signal?.removeEventListener("abort", cancel);
          reject(e);
        },
      });
      pump ??= drive();
    });

  const takeSlot = () => {
    if (disposed) throw new PolicyError({ message: "the native sampler was disposed" });
    const slot = free.shift();
    if (slot === undefined) throw new PolicyError({ message: `all ${sequences} sequence slots are in use` });
    native.clear(slot);
    return slot;
  };
  const releaseSlot = (slot: number) => {
    if (disposed) return;
    native.clear(slot);
    free.push(slot);
    free.sort((a, b) => a - b);
  };

  const checkTokens = (tokens: ArrayLike<number>, what: string) => {
    for (let i = 0; i < tokens.length; i++)
      if (tokens[i] < 0 || tokens[i] >= vocab)
        throw new PolicyError({ message: `${what} ${tokens[i]} is outside the vocabulary (${vocab})` });
  };

  const openSequence = (prompt: Int32Array): NativeSamplerSequence => {
    checkTokens(prompt, "prompt token");
    const slot = takeSlot();
    const history: number[] = [];
    let pending: number[] = Array.from(prompt);
    let inFlight: Promise<unknown> | undefined;
    let closed = false;
    return {
      tokens: () => Int32Array.from([...history, ...pending]),
      generate: async (append, options, signal) => {
        if (closed) throw new PolicyError({ message: "the sequence was closed" });
        if (inFlight)
          throw new PolicyError({
            message: "generate called again on a sequence before the previous call finished",
          });
        checkTokens(append, "appended token");
        const feed = [...pending, ...append];
        const needed = history.length + feed.length;
        if (needed > contextPerSequence)
          throw new ContextOverflowError({
            message: `sequence needs ${needed} tokens (${history.length} cached + ${feed.length} new), the context holds ${contextPerSequence} per sequence`,
            needed,
            contextSize: contextPerSequence,
          });
        if (feed.length === 0)
          throw new PolicyError({ message: "nothing to evaluate: empty prompt and nothing appended" });
        // Nothing is decoded unless a token is sampled that still fits the context.
        const idle =
          options.maxTokens <= 0 ? "length" : needed + 1 > contextPerSequence ? "context" : undefined;
        if (idle !== undefined) {
          pending = feed;
          return { tokens: new Int32Array(0), logprobs: new Float32Array(0), finishReason: idle };
        }
        const running = request(
          {
            sequence: slot,
            position: history.length,
            feed: Int32Array.from(feed),
            seed: options.seed ?? Math.floor(Math.random() * 2 ** 31),
            temperature: options.temperature ?? 1,
            topK: options.topK ?? 0,
            topP: options.topP ?? 1,
            maxTokens: options.maxTokens,
            stops: options.stop ?? [],
          },
          signal,
        );
        inFlight = running;
        try {
          const result = await running;
          history.push(...feed);
          // The last sampled token is not evaluated yet: it is fed first next time.
          const tokens = Array.from(result.tokens);
          history.push(...tokens.slice(0, -1));
          pending = tokens.slice(-1);
          return {
            tokens: result.tokens,
            logprobs: result.logprobs,
            // Sampling requests end as eos / stop / length / context ("cancelled" rejected above).
            finishReason: result.finish as Generation["finishReason"],
            ...(result.stop === undefined ? {} : { stopString: result.stop }),
          };
        } finally {
          inFlight = undefined;
        }
      },
      close: () => {
        if (closed) return Promise.resolve();
        closed = true;
        if (inFlight === undefined) {
          releaseSlot(slot);
          return Promise.resolve();
        }
        // The engine is decoding this slot: its cells are dropped once the request has ended.
        return inFlight.then(
          () => releaseSlot(slot),
          () => releaseSlot(slot),
        );
      },
    };
  };

  const score = async (tokens: Int32Array, from: number): Promise<Float32Array> => {
    if (from < 1 || from > tokens.length)
      throw new PolicyError({ message: `score: from must be in [1, ${tokens.length}], got ${from}` });
    checkTokens(tokens, "score: token");
    if (tokens.length > contextPerSequence)
      throw new ContextOverflowError({
        message: `score needs ${tokens.length} tokens, the context holds ${contextPerSequence} per sequence`,
        needed: tokens.length,
        contextSize: contextPerSequence,
      });
    if (from === tokens.length) return new Float32Array(0);
    const slot = takeSlot();
    try {
      const result = await request({
        sequence: slot,
        position: 0,
        feed: tokens.subarray(0, tokens.length - 1),
        seed: 0,
        temperature: 1,
        topK: 0,
        topP: 1,
        maxTokens: 0,
        stops: [],
        scoreFirst: from - 1,
        targets: tokens.subarray(from),
      });
      return result.logprobs;
    } finally {
      releaseSlot(slot);
    }
  };

  const quiet = async () => {
    while (pump) await pump;
  };

  return {
    vocabularySize: vocab,
    contextPerSequence,
    openSequence,
    score,
    setLora: async (adapter) => {
      await quiet();
      if (adapter !== undefined && "bytes" in adapter) native.setLoraBytes(adapter.bytes, adapter.scale ?? 1);
      else native.setLora(adapter?.path ?? "", adapter?.scale ?? 1);
    },
    decodeCalls: () => native.info().decodes,
    decodedTokens: () => native.info().decodedTokens,
    dispose: async () => {
      await quiet();
      if (!disposed) native.free();
      disposed = true;
    },
  };
};
