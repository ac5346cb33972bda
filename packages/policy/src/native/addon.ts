/**
 * Finding and loading the native engine's addon. It is linked twice (scripts/build-native.mjs):
 * `sampler.node` against node-llama-cpp's CPU libraries and `sampler-cuda.node` against its CUDA
 * ones. A process must load the flavour whose libllama node-llama-cpp itself loaded (both share
 * `libggml-base.so` by name, so mixing the two would mix two builds of ggml).
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export type AddonFlavor = "cpu" | "cuda";

export interface NativeResult {
  readonly id: number;
  readonly tokens: Int32Array;
  readonly logprobs: Float32Array;
  readonly finish: "eos" | "stop" | "length" | "context" | "scored" | "cancelled";
  readonly stop?: string;
  readonly position: number;
}

export interface NativeRequest {
  readonly sequence: number;
  readonly position: number;
  readonly feed: Int32Array;
  readonly seed: number;
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly maxTokens: number;
  readonly stops: ReadonlyArray<string>;
  /** Scoring: log p(targets[k]) at the row of feed[scoreFirst + k]; nothing is sampled. */
  readonly scoreFirst?: number;
  readonly targets?: Int32Array;
}

export interface NativeEngineOptions {
  readonly backendsDir: string;
  readonly contextPerSequence: number;
  readonly sequences: number;
  readonly threads: number;
  readonly gpuLayers: number;
  readonly batchSize: number;
  /** A ggml_type for the KV cache, -1 for llama.cpp's default. */
  readonly cacheType: number;
  readonly flashAttention: boolean;
  readonly unifiedKv: boolean;
}

/** The addon's `NativeEngine` (native/bindings.cpp). */
export interface NativeEngineHandle {
  submit(request: NativeRequest): number;
  run(steps: number): Promise<NativeResult[]>;
  clear(sequence: number): void;
  cancel(id: number): void;
  setLora(path: string, scale: number): void;
  setLoraBytes(bytes: Uint8Array, scale: number): void;
  info(): { vocab: number; contextPerSequence: number; decodes: number; decodedTokens: number };
  free(): void;
}

const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

const files: Record<AddonFlavor, { addon: string; libraries: string }> = {
  cpu: { addon: "sampler.node", libraries: "linux-x64" },
  cuda: { addon: "sampler-cuda.node", libraries: "linux-x64-cuda" },
};

/** node-llama-cpp's library directory for a flavour (its backends are loaded from there). */
export const backendsDirectory = (flavor: AddonFlavor): string => {
  const sub = files[flavor].libraries;
  for (let dir = packageDir; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", "@node-llama-cpp", sub, "bins", sub);
    if (existsSync(join(candidate, "libggml-base.so"))) return candidate;
    if (dirname(dir) === dir) throw new Error(`@node-llama-cpp/${sub} is not installed`);
  }
};

export const addonFile = (flavor: AddonFlavor) => join(packageDir, "build", files[flavor].addon);

/** Whether the addon of a flavour was built (and its libraries are installed). */
export const addonAvailable = (flavor: AddonFlavor): boolean => {
  if (!existsSync(addonFile(flavor))) return false;
  try {
    backendsDirectory(flavor);
    return true;
  } catch {
    return false;
  }
};

type Addon = { NativeEngine: new (path: string, options: NativeEngineOptions) => NativeEngineHandle };
const loaded = new Map<AddonFlavor, Addon>();

export const loadAddon = (flavor: AddonFlavor): Addon => {
  const cached = loaded.get(flavor);
  if (cached) return cached;
  const other = loaded.size > 0 ? [...loaded.keys()][0] : undefined;
  if (other !== undefined)
    throw new Error(`the ${other} native engine is loaded already; one process cannot load both flavours`);
  const file = addonFile(flavor);
  if (!existsSync(file))
    throw new Error(
      `${file} is missing: build it with \`node ${join(packageDir, "scripts", "build-native.mjs")}\`` +
        (flavor === "cuda" ? " (it needs node-llama-cpp's @node-llama-cpp/linux-x64-cuda package)" : ""),
    );
  const addon = createRequire(import.meta.url)(file) as Addon;
  loaded.set(flavor, addon);
  return addon;
};

/** ggml_type ids of the KV cache types the policy offers. */
export const ggmlTypeOf = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8 } as const;
