/**
 * An experimental sampling engine whose decode loop runs in C++ over libllama (native/engine.cpp):
 * one `llama_decode` per step for every live sequence, sampling, the temperature-1
 * log-probability of each sampled token, end-of-generation tokens, stop strings and token budgets
 * are handled natively, and JavaScript is called once per chunk of steps instead of once per
 * sequence per token. Sequences join between chunks (continuous batching).
 *
 * It covers generation only (no scoring, LoRA swap or reload yet), so `LlamaCppPolicy` does not
 * use it; the policy bench measures it against the other engines.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Generation, SamplingOptions } from "@workflow-r1/core";

interface NativeResult {
  readonly id: number;
  readonly tokens: Int32Array;
  readonly logprobs: Float32Array;
  readonly finish: Generation["finishReason"];
  readonly stop?: string;
  readonly position: number;
}

interface NativeEngineHandle {
  submit(request: {
    sequence: number;
    position: number;
    feed: Int32Array;
    seed: number;
    temperature: number;
    topK: number;
    topP: number;
    maxTokens: number;
    stops: ReadonlyArray<string>;
  }): number;
  run(steps: number): Promise<NativeResult[]>;
  clear(sequence: number): void;
  info(): { vocab: number; contextPerSequence: number; decodes: number };
  free(): void;
}

export interface NativeSamplerConfig {
  readonly modelPath: string;
  /** Parallel sequences (KV cache slots). Default 1. */
  readonly sequences?: number;
  /** Tokens each sequence may hold. Default 2048. */
  readonly contextPerSequence?: number;
  /** CPU threads of llama.cpp. Default 1. */
  readonly threads?: number;
  /** Layers offloaded to the GPU (0 = CPU; needs the CUDA libraries). Default 0. */
  readonly gpuLayers?: number;
  /** Tokens one decode may hold (prompt chunks share it). Default 2048. */
  readonly batchSize?: number;
  /** F32 KV cache (log-probabilities comparable with the learner to ~1e-5). Default false (F16). */
  readonly f32Cache?: boolean;
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
  /** Every token the sequence holds. */
  readonly tokens: () => Int32Array;
  /** Evaluate `append`, then sample up to `maxTokens` tokens (like `PolicySequence.generate`). */
  readonly generate: (append: Int32Array, options: SamplingOptions) => Promise<Generation>;
  /** Free the slot (its KV cells are dropped). */
  readonly close: () => void;
}

export interface NativeSampler {
  readonly openSequence: (prompt: Int32Array) => NativeSamplerSequence;
  /** `llama_decode` calls so far. */
  readonly decodeCalls: () => number;
  readonly dispose: () => Promise<void>;
}

const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

const backendsDirectory = (): string => {
  const sub = process.env.WORKFLOW_R1_CUDA === "1" ? "linux-x64-cuda" : "linux-x64";
  for (let dir = packageDir; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", "@node-llama-cpp", sub, "bins", sub);
    if (existsSync(join(candidate, "libggml-base.so"))) return candidate;
    if (dirname(dir) === dir) throw new Error(`@node-llama-cpp/${sub} is not installed`);
  }
};

let addon: { NativeEngine: new (path: string, options: object) => NativeEngineHandle } | undefined;
const loadAddon = () => {
  if (addon) return addon;
  const file = join(packageDir, "build", "sampler.node");
  if (!existsSync(file))
    throw new Error(
      `${file} is missing: build it with \`node ${join(packageDir, "scripts", "build-native.mjs")}\``,
    );
  addon = createRequire(import.meta.url)(file);
  return addon as NonNullable<typeof addon>;
};

/** Open the native engine on a GGUF. Experimental: generation only. */
export const createNativeSampler = (config: NativeSamplerConfig): NativeSampler => {
  const sequences = config.sequences ?? 1;
  const native = new (loadAddon().NativeEngine)(config.modelPath, {
    backendsDir: backendsDirectory(),
    contextPerSequence: config.contextPerSequence ?? 2048,
    sequences,
    threads: config.threads ?? 1,
    gpuLayers: config.gpuLayers ?? 0,
    batchSize: config.batchSize ?? 2048,
    f32Cache: config.f32Cache ?? false,
    unifiedKv: config.unifiedKv ?? false,
  });
  const { vocab } = native.info();
  const stepsPerCall = config.stepsPerCall ?? 16;
  // Lowest free slot first: live sequences stay on consecutive ids, which llama.cpp decodes in one ubatch.
  const free = Array.from({ length: sequences }, (_, i) => i);
  const waiting = new Map<number, { resolve: (r: NativeResult) => void; reject: (e: unknown) => void }>();
  let pumping = false;
  let disposed = false;

  // One driver loop: run chunks while any request waits; requests submitted meanwhile join the next chunk.
  const pump = async () => {
    if (pumping) return;
    pumping = true;
    try {
      while (waiting.size > 0) {
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
      pumping = false;
    }
  };

  const openSequence = (prompt: Int32Array): NativeSamplerSequence => {
    if (disposed) throw new Error("the native sampler was disposed");
    const slot = free.shift();
    if (slot === undefined) throw new Error(`all ${sequences} sequence slots are in use`);
    native.clear(slot);
    const history: number[] = [];
    let pending: number[] = Array.from(prompt);
    let busy = false;
    let closed = false;
    return {
      tokens: () => Int32Array.from([...history, ...pending]),
      generate: async (append, options) => {
        if (closed) throw new Error("the sequence was closed");
        if (busy) throw new Error("generate called again on a sequence before the previous call finished");
        for (const t of append)
          if (t < 0 || t >= vocab)
            throw new Error(`appended token ${t} is outside the vocabulary (${vocab})`);
        const feed = Int32Array.from([...pending, ...append]);
        busy = true;
        try {
          const result = await new Promise<NativeResult>((resolve, reject) => {
            const id = native.submit({
              sequence: slot,
              position: history.length,
              feed,
              seed: options.seed ?? Math.floor(Math.random() * 2 ** 31),
              temperature: options.temperature ?? 1,
              topK: options.topK ?? 0,
              topP: options.topP ?? 1,
              maxTokens: options.maxTokens,
              stops: options.stop ?? [],
            });
            waiting.set(id, { resolve, reject });
            void pump();
          });
          history.push(...feed);
          // The last sampled token is not evaluated yet: it is fed first next time.
          const tokens = Array.from(result.tokens);
          history.push(...tokens.slice(0, -1));
          pending = tokens.slice(-1);
          return {
            tokens: result.tokens,
            logprobs: result.logprobs,
            finishReason: result.finish,
            ...(result.stop === undefined ? {} : { stopString: result.stop }),
          };
        } finally {
          busy = false;
        }
      },
      close: () => {
        if (closed) return;
        closed = true;
        native.clear(slot);
        free.push(slot);
        free.sort((a, b) => a - b);
      },
    };
  };

  return {
    openSequence,
    decodeCalls: () => native.info().decodes,
    dispose: async () => {
      while (pumping) await new Promise((r) => setTimeout(r, 1));
      if (!disposed) native.free();
      disposed = true;
    },
  };
};
