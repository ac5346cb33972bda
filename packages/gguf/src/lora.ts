/**
 * LoRA adapters in llama.cpp's GGUF format (`general.type` = `adapter`, `adapter.type` = `lora`,
 * `adapter.lora.alpha`, tensor pairs `<base tensor>.lora_a` / `.lora_b`). For a base matrix W with
 * ggml shape [nIn, nOut], `lora_a` has shape [nIn, rank] and `lora_b` [rank, nOut]; llama.cpp adds
 * `scale · alpha / rank · B·(A·x)` to `W·x` (`scale` is the per-context adapter scale).
 */
import { GgmlType, type GgufFile, type GgufTensor, gguf, readGguf, writeGguf } from "./gguf.js";
import { createRng } from "./tiny.js";

export interface LoraPair {
  /** Name of the base tensor, e.g. `blk.0.attn_q.weight`. */
  readonly target: string;
  /** [nIn, rank] in ggml order: `rank` rows of length nIn. */
  readonly a: Float32Array;
  /** [rank, nOut] in ggml order: `nOut` rows of length rank. */
  readonly b: Float32Array;
  readonly nIn: number;
  readonly nOut: number;
  readonly rank: number;
}

export interface LoraAdapterSpec {
  readonly architecture: string;
  readonly alpha: number;
  readonly pairs: ReadonlyArray<LoraPair>;
  /** Store A and B as F16 (llama.cpp accepts both). Default F32. */
  readonly f16?: boolean;
}

/** Build the GGUF of a LoRA adapter. */
export const buildLoraGguf = (spec: LoraAdapterSpec): GgufFile => {
  const type = spec.f16 ? GgmlType.F16 : GgmlType.F32;
  const tensors: GgufTensor[] = [];
  for (const p of spec.pairs) {
    if (p.a.length !== p.nIn * p.rank || p.b.length !== p.rank * p.nOut)
      throw new RangeError(
        `LoRA ${p.target}: A must hold nIn·rank = ${p.nIn * p.rank} values and B rank·nOut = ${p.rank * p.nOut}`,
      );
    tensors.push({ name: `${p.target}.lora_a`, type, shape: [p.nIn, p.rank], data: p.a });
    tensors.push({ name: `${p.target}.lora_b`, type, shape: [p.rank, p.nOut], data: p.b });
  }
  return {
    version: 3,
    metadata: {
      "general.architecture": gguf.string(spec.architecture),
      "general.type": gguf.string("adapter"),
      "general.alignment": gguf.u32(32),
      "adapter.type": gguf.string("lora"),
      "adapter.lora.alpha": gguf.f32(spec.alpha),
    },
    tensors,
  };
};

/** Write a LoRA adapter GGUF (atomically). */
export const writeLoraGguf = (path: string, spec: LoraAdapterSpec): Promise<void> =>
  writeGguf(path, buildLoraGguf(spec));

const DEFAULT_TARGETS = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];

export interface CreateLoraOptions {
  /** The base model: its GGUF (or a path to it). */
  readonly base: GgufFile | string;
  readonly rank?: number;
  readonly alpha?: number;
  /**
   * Which matrices get an adapter: short names matched in every block (`attn_q`, `ffn_down`, …) or
   * full tensor names. Default: every attention and feed-forward matrix.
   */
  readonly targets?: ReadonlyArray<string>;
  readonly seed?: number;
  /** Standard deviation of A and B entries. Default 0.1. */
  readonly std?: number;
  readonly path: string;
}

/** Write a random LoRA adapter for `base` (deterministic in `seed`) and return its spec. */
export const createLoraAdapter = async (
  options: CreateLoraOptions,
): Promise<LoraAdapterSpec & { path: string }> => {
  const base = typeof options.base === "string" ? await readGguf(options.base) : options.base;
  const rank = options.rank ?? 4;
  const alpha = options.alpha ?? rank;
  const targets = options.targets ?? DEFAULT_TARGETS;
  const rng = createRng(options.seed ?? 0);
  const std = options.std ?? 0.1;
  const pairs: LoraPair[] = [];
  for (const t of base.tensors) {
    if (t.shape.length !== 2 || !t.name.endsWith(".weight") || t.name === "token_embd.weight") continue;
    const short = t.name.replace(/^blk\.\d+\./, "").replace(/\.weight$/, "");
    if (!targets.includes(t.name) && !(t.name.startsWith("blk.") && targets.includes(short))) continue;
    const [nIn, nOut] = t.shape;
    const a = new Float32Array(nIn * rank);
    const b = new Float32Array(rank * nOut);
    for (let i = 0; i < a.length; i++) a[i] = rng.normal() * std;
    for (let i = 0; i < b.length; i++) b[i] = rng.normal() * std;
    pairs.push({ target: t.name, a, b, nIn, nOut, rank });
  }
  if (pairs.length === 0) throw new RangeError(`no base tensor matches LoRA targets ${targets.join(", ")}`);
  const architecture = String(base.metadata["general.architecture"]?.value ?? "llama");
  const spec: LoraAdapterSpec = { architecture, alpha, pairs };
  await writeLoraGguf(options.path, spec);
  return { ...spec, path: options.path };
};

/**
 * The base model with an adapter merged in at `scale` (W' = W + scale·alpha/rank·B·A), as llama.cpp
 * applies it; for reference forwards in tests and for exporting merged weights.
 */
export const mergeLora = (base: GgufFile, adapter: GgufFile, scale = 1): GgufFile => {
  const alphaValue = adapter.metadata["adapter.lora.alpha"]?.value;
  const alpha = typeof alphaValue === "number" ? alphaValue : 0;
  const byName = new Map(adapter.tensors.map((t) => [t.name, t]));
  const tensors = base.tensors.map((t) => {
    const a = byName.get(`${t.name}.lora_a`);
    const b = byName.get(`${t.name}.lora_b`);
    if (!a || !b) return t;
    if (
      !(t.data instanceof Float32Array) ||
      !(a.data instanceof Float32Array) ||
      !(b.data instanceof Float32Array)
    )
      throw new RangeError(`mergeLora: ${t.name} must be F32/F16`);
    const [nIn, nOut] = t.shape;
    const rank = b.shape[0];
    const s = alpha ? (scale * alpha) / rank : scale;
    const data = Float32Array.from(t.data);
    for (let o = 0; o < nOut; o++)
      for (let r = 0; r < rank; r++) {
        const bor = b.data[o * rank + r] * s;
        if (bor === 0) continue;
        for (let i = 0; i < nIn; i++) data[o * nIn + i] += bor * a.data[r * nIn + i];
      }
    return { ...t, type: GgmlType.F32, data };
  });
  return { ...base, tensors };
};
