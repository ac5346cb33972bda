import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The addon's learner object (see native/bindings.cpp). Token blocks are `rows × length`, packed:
 * `segments` names each token's sequence within its row (padding: −1), and entry r*length+t of a
 * result is log p(tokens[r*length+t+1]) given the earlier tokens of the same sequence. Calls that
 * compute return Promises and run on libuv's thread pool; callers must not overlap them.
 */
export interface NativeLearnerHandle {
  info(): NativeInfo;
  /** `base`: the base model's log-probabilities, without the LoRA adapter (LoRA mode). */
  forward(
    tokens: Int32Array,
    segments: Int32Array,
    length: number,
    rows: number,
    base?: boolean,
  ): Promise<Float32Array>;
  /** Like forward, and accumulates the gradient of Σ coef·logp into the gradient buffers. */
  backward(
    tokens: Int32Array,
    segments: Int32Array,
    length: number,
    rows: number,
    coefficients: Float32Array,
  ): Promise<Float32Array>;
  /** The training graph's forward half; its activations are kept for `backwardKept`. */
  forwardKept(tokens: Int32Array, segments: Int32Array, length: number, rows: number): Promise<Float32Array>;
  /** The backward half after `forwardKept` (same shape, no weight change in between). */
  backwardKept(coefficients: Float32Array, length: number, rows: number): Promise<void>;
  gradNorm(): Promise<number>;
  /** Clip + AdamW + zero the gradient; resolves to the gradient norm before clipping. */
  step(
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    maxGradNorm: number,
  ): Promise<number>;
  zeroGrad(): void;
  save(path: string, format: "gguf" | "lora"): Promise<void>;
  /** The LoRA adapter GGUF `save(path, "lora")` writes, in memory. */
  adapterBytes(): Promise<Uint8Array>;
  saveState(path: string): Promise<void>;
  loadState(path: string): Promise<void>;
  getParameter(name: string, index: number): number;
  setParameter(name: string, index: number, value: number): void;
  gradient(name: string, index: number): number;
  parameterNames(): Array<[string, number]>;
  /** Compile and allocate the graph of one batch shape without computing; resolves to its work-buffer bytes. */
  reserve(length: number, rows: number, training: boolean): Promise<number>;
  /** Compute node by node and time each op type (slower; for finding where the time goes). */
  setProfiling(on: boolean): void;
  /** Seconds and node count per op type since profiling started or the last call. */
  takeProfile(): Record<string, { seconds: number; count: number }>;
  free(): void;
}

/** Bytes the learner holds on its backend. */
export interface NativeMemory {
  /** Base weights: F32 in full and frozen mode (dequantized at load), as stored in LoRA mode. */
  readonly weights: number;
  /** LoRA tensors (0 in full fine-tuning, where the weights are the trainable tensors). */
  readonly trainable: number;
  /** Gradient accumulators (0 when frozen). */
  readonly gradients: number;
  /** AdamW moments (0 when frozen). */
  readonly optimizer: number;
  /** Transposed copies of the frozen base (LoRA with `transposedBase`). */
  readonly transposedBase: number;
  /** Work buffer of the largest compiled graph so far, and that graph's tokens (rows × length). */
  readonly compute: number;
  readonly computeTokens: number;
}

export interface NativeInfo {
  readonly architecture: string;
  /**
   * "full" (every weight trained, held in F32), "lora" (adapters over the base as stored) or
   * "frozen" (inference only, weights in F32).
   */
  readonly mode: "full" | "lora" | "frozen";
  readonly vocab: number;
  readonly dim: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly context: number;
  readonly step: number;
  readonly trainableParameters: number;
  readonly backend: string;
  readonly precision: "f32" | "f16";
  /** The token embedding's gradient as a one-hot product (GPU default) rather than GET_ROWS_BACK. */
  readonly denseEmbeddingGradient: boolean;
  /** Backward passes that reused the activations of the preceding `logprobs` call. */
  readonly reusedForwards: number;
  readonly memory: NativeMemory;
}

export interface NativeOptions {
  readonly threads: number;
  readonly gpu: boolean;
  readonly loraRank: number;
  readonly loraAlpha: number;
  readonly loraTargets: ReadonlyArray<string>;
  readonly seed: number;
  readonly precision: "f32" | "f16";
  readonly graphCacheSize: number;
  readonly transposedBase: boolean;
  readonly frozen: boolean;
}

export interface Addon {
  NativeLearner: new (path: string, backendsDir: string, options: NativeOptions) => NativeLearnerHandle;
  abiProblem(): string;
  ggmlVersion(): string;
  /** Rewrites a GGUF with its 2-D F32 weights in `type` (f16, bf16, q8_0, q4_K, …; f32: every tensor dequantized); returns how many. */
  convertModel(from: string, to: string, type: string): number;
  /** Test hook: the error the support check gives for an op the CPU (or GPU) backend lacks. */
  probeUnsupportedOp(backendsDir: string, gpu?: boolean): string;
}

const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Where the ggml backends (libggml-cpu-*.so) node-llama-cpp ships are. */
export const backendsDirectory = (): string => {
  const fromEnv = process.env.WORKFLOW_R1_GGML_BACKENDS;
  if (fromEnv) return fromEnv;
  const sub = process.env.WORKFLOW_R1_CUDA === "1" ? "linux-x64-cuda" : "linux-x64";
  for (let dir = packageDir; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", "@node-llama-cpp", sub, "bins", sub);
    if (existsSync(join(candidate, "libggml-base.so"))) return candidate;
    if (dirname(dir) === dir) throw new Error(`@node-llama-cpp/${sub} (ggml libraries) is not installed`);
  }
};

let cached: Addon | undefined;

/** Load build/learner.node once and refuse it when the ggml it finds is not the one it was built for. */
export const loadAddon = (): Addon => {
  if (cached) return cached;
  const file = join(packageDir, "build", "learner.node");
  if (!existsSync(file))
    throw new Error(
      `${file} is missing: build the addon with \`node ${join(packageDir, "scripts", "build-native.mjs")}\` (needs g++ and git)`,
    );
  const addon = createRequire(import.meta.url)(file) as Addon;
  const problem = addon.abiProblem();
  if (problem !== "") throw new Error(`ggml ABI mismatch: ${problem}; rebuild the learner addon`);
  cached = addon;
  return addon;
};

/**
 * Writes a copy of a GGUF with its 2-D F32 weight matrices converted to `type` ("f16", "bf16",
 * "q8_0", "q4_K", … — ggml's type names; rows must be a multiple of the type's block size, 256
 * for K-quants); norms and biases stay F32. `"f32"` instead dequantizes every non-F32 tensor.
 * `general.file_type` becomes llama.cpp's file type of the result (0 = all F32, 3 = mostly Q4_1,
 * 15 = Q4_K_M, …). Returns the number of tensors converted. Useful for
 * half-precision or quantized bases made from a small F32 model, and their F32 references.
 */
export const convertModel = (from: string, to: string, type: string): number =>
  loadAddon().convertModel(from, to, type);
