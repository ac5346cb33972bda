import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The addon's learner object (see native/learner.cpp). Positions are "predicts the next token".
 * forward / backward / step run on libuv's thread pool; callers must not overlap calls.
 */
export interface NativeLearnerHandle {
  info(): NativeInfo;
  /** tokens [B*L] → logp [B*L]; entry b*L+t = log p(tokens[b*L+t+1] | tokens[b*L..b*L+t]). */
  forward(tokens: Int32Array, length: number, batch: number): Float32Array;
  /** Like forward, and accumulates the gradient of Σ coef·logp into the gradient buffers. */
  backward(tokens: Int32Array, length: number, batch: number, coefficients: Float32Array): Float32Array;
  gradNorm(): number;
  step(
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    maxGradNorm: number,
  ): number;
  zeroGrad(): void;
  save(path: string, format: "gguf" | "lora"): void;
  saveState(path: string): void;
  loadState(path: string): void;
  getParameter(name: string, index: number): number;
  setParameter(name: string, index: number, value: number): void;
  gradient(name: string, index: number): number;
  parameterNames(): Array<[string, number]>;
  free(): void;
}

export interface NativeInfo {
  readonly architecture: string;
  readonly vocab: number;
  readonly dim: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly context: number;
  readonly step: number;
  readonly trainableParameters: number;
  readonly backend: string;
}

export interface NativeOptions {
  readonly threads: number;
  readonly gpu: boolean;
  readonly loraRank: number;
  readonly loraAlpha: number;
  readonly loraTargets: ReadonlyArray<string>;
  readonly seed: number;
}

interface Addon {
  NativeLearner: new (path: string, backendsDir: string, options: NativeOptions) => NativeLearnerHandle;
  abiProblem(): string;
  ggmlVersion(): string;
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
