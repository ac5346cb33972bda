/**
 * A plain TypeScript forward pass for tiny F32/F16 `llama` / `qwen2` GGUF models, written to match
 * llama.cpp's graph: RMSNorm, RoPE (NORM mode — adjacent pairs — for `llama`, NEOX mode — halves —
 * for `qwen2`), grouped-query causal attention, SwiGLU and the output head. Tests use it to check
 * the log-probabilities llama.cpp returns; it is O(n²·d) and only meant for tiny models.
 */
import type { GgufFile, GgufTensor } from "./gguf.js";

interface Weights {
  readonly arch: string;
  readonly dim: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly ffn: number;
  readonly vocab: number;
  readonly eps: number;
  readonly freqBase: number;
  readonly ropeDim: number;
  readonly get: (name: string) => Float32Array;
  readonly maybe: (name: string) => Float32Array | undefined;
}

const num = (file: GgufFile, key: string, fallback?: number): number => {
  const v = file.metadata[key]?.value;
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  if (fallback !== undefined) return fallback;
  throw new Error(`reference forward: metadata ${key} is missing`);
};

const weightsOf = (file: GgufFile): Weights => {
  const arch = String(file.metadata["general.architecture"]?.value ?? "");
  if (arch !== "llama" && arch !== "qwen2")
    throw new Error(`reference forward supports llama and qwen2, not "${arch}"`);
  const byName = new Map<string, GgufTensor>(file.tensors.map((t) => [t.name, t]));
  const maybe = (name: string) => {
    const t = byName.get(name);
    if (t === undefined) return undefined;
    if (!(t.data instanceof Float32Array))
      throw new Error(`reference forward: tensor ${name} is quantised (F32/F16 only)`);
    return t.data;
  };
  const get = (name: string) => {
    const t = maybe(name);
    if (t === undefined) throw new Error(`reference forward: tensor ${name} is missing`);
    return t;
  };
  const dim = num(file, `${arch}.embedding_length`);
  const heads = num(file, `${arch}.attention.head_count`);
  const headDim = dim / heads;
  const embd = byName.get("token_embd.weight");
  return {
    arch,
    dim,
    layers: num(file, `${arch}.block_count`),
    heads,
    kvHeads: num(file, `${arch}.attention.head_count_kv`, heads),
    headDim,
    ffn: num(file, `${arch}.feed_forward_length`),
    vocab: embd?.shape[1] ?? 0,
    eps: num(file, `${arch}.attention.layer_norm_rms_epsilon`),
    freqBase: num(file, `${arch}.rope.freq_base`, 10000),
    ropeDim: num(file, `${arch}.rope.dimension_count`, headDim),
    get,
    maybe,
  };
};

/** y = W·x for a ggml matrix with ne0 = `inner` (row length) and `outer` rows. */
const matvec = (
  w: Float32Array,
  x: Float64Array,
  inner: number,
  outer: number,
  bias?: Float32Array,
): Float64Array => {
  const y = new Float64Array(outer);
  for (let o = 0; o < outer; o++) {
    let s = 0;
    const base = o * inner;
    for (let i = 0; i < inner; i++) s += w[base + i] * x[i];
    y[o] = bias ? s + bias[o] : s;
  }
  return y;
};

const rmsNorm = (x: Float64Array, weight: Float32Array, eps: number): Float64Array => {
  let ss = 0;
  for (const v of x) ss += v * v;
  const scale = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * scale * weight[i]);
};

const rope = (
  v: Float64Array,
  offset: number,
  headDim: number,
  ropeDim: number,
  pos: number,
  base: number,
  neox: boolean,
) => {
  for (let i = 0; i < ropeDim / 2; i++) {
    const theta = pos * base ** ((-2 * i) / ropeDim);
    const c = Math.cos(theta);
    const s = Math.sin(theta);
    const a = offset + (neox ? i : 2 * i);
    const b = offset + (neox ? i + ropeDim / 2 : 2 * i + 1);
    const x0 = v[a];
    const x1 = v[b];
    v[a] = x0 * c - x1 * s;
    v[b] = x0 * s + x1 * c;
  }
  void headDim;
};

/** Next-token logits after each position: `result[t]` is the distribution over `tokens[t + 1]`. */
export const referenceLogits = (file: GgufFile, tokens: ArrayLike<number>): Float64Array[] => {
  const w = weightsOf(file);
  const { dim, heads, kvHeads, headDim, ffn, vocab } = w;
  const neox = w.arch === "qwen2";
  const n = tokens.length;
  const embd = w.get("token_embd.weight");
  const kvDim = kvHeads * headDim;
  let hidden: Float64Array[] = [];
  for (let t = 0; t < n; t++) {
    const id = tokens[t];
    if (id < 0 || id >= vocab)
      throw new RangeError(`token ${id} at position ${t} is outside the vocabulary (${vocab})`);
    hidden.push(Float64Array.from(embd.subarray(id * dim, (id + 1) * dim)));
  }
  for (let l = 0; l < w.layers; l++) {
    const p = `blk.${l}.`;
    const wq = w.get(`${p}attn_q.weight`);
    const wk = w.get(`${p}attn_k.weight`);
    const wv = w.get(`${p}attn_v.weight`);
    const wo = w.get(`${p}attn_output.weight`);
    const bq = w.maybe(`${p}attn_q.bias`);
    const bk = w.maybe(`${p}attn_k.bias`);
    const bv = w.maybe(`${p}attn_v.bias`);
    const qs: Float64Array[] = [];
    const ks: Float64Array[] = [];
    const vs: Float64Array[] = [];
    for (let t = 0; t < n; t++) {
      const x = rmsNorm(hidden[t], w.get(`${p}attn_norm.weight`), w.eps);
      const q = matvec(wq, x, dim, heads * headDim, bq);
      const k = matvec(wk, x, dim, kvDim, bk);
      for (let h = 0; h < heads; h++) rope(q, h * headDim, headDim, w.ropeDim, t, w.freqBase, neox);
      for (let h = 0; h < kvHeads; h++) rope(k, h * headDim, headDim, w.ropeDim, t, w.freqBase, neox);
      qs.push(q);
      ks.push(k);
      vs.push(matvec(wv, x, dim, kvDim, bv));
    }
    const scale = 1 / Math.sqrt(headDim);
    const group = heads / kvHeads;
    const next: Float64Array[] = [];
    for (let t = 0; t < n; t++) {
      const att = new Float64Array(heads * headDim);
      for (let h = 0; h < heads; h++) {
        const kvh = Math.floor(h / group);
        const scores = new Float64Array(t + 1);
        let max = Number.NEGATIVE_INFINITY;
        for (let s = 0; s <= t; s++) {
          let dot = 0;
          for (let i = 0; i < headDim; i++) dot += qs[t][h * headDim + i] * ks[s][kvh * headDim + i];
          scores[s] = dot * scale;
          if (scores[s] > max) max = scores[s];
        }
        let sum = 0;
        for (let s = 0; s <= t; s++) {
          scores[s] = Math.exp(scores[s] - max);
          sum += scores[s];
        }
        for (let s = 0; s <= t; s++) {
          const a = scores[s] / sum;
          for (let i = 0; i < headDim; i++) att[h * headDim + i] += a * vs[s][kvh * headDim + i];
        }
      }
      const h1 = matvec(wo, att, heads * headDim, dim).map((v, i) => v + hidden[t][i]);
      const x = rmsNorm(h1, w.get(`${p}ffn_norm.weight`), w.eps);
      const gate = matvec(w.get(`${p}ffn_gate.weight`), x, dim, ffn);
      const up = matvec(w.get(`${p}ffn_up.weight`), x, dim, ffn);
      const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]);
      const down = matvec(w.get(`${p}ffn_down.weight`), act, ffn, dim);
      next.push(h1.map((v, i) => v + down[i]));
    }
    hidden = next;
  }
  const out = w.maybe("output.weight") ?? embd;
  const outBias = w.maybe("output.bias");
  return hidden.map((h) => matvec(out, rmsNorm(h, w.get("output_norm.weight"), w.eps), dim, vocab, outBias));
};

/** log-softmax of one logit row, evaluated at `index`. */
export const logSoftmaxAt = (logits: ArrayLike<number>, index: number): number => {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return logits[index] - max - Math.log(sum);
};

/**
 * Teacher-forced log-probabilities at temperature 1 (the learner's quantity): entry i is
 * log p(tokens[from + i] | tokens[< from + i]). Same contract as `Policy.score`.
 */
export const referenceLogprobs = (file: GgufFile, tokens: ArrayLike<number>, from = 1): Float64Array => {
  if (from < 1) throw new RangeError(`from must be ≥ 1 (the first token has no prediction), got ${from}`);
  const logits = referenceLogits(file, tokens);
  const out = new Float64Array(Math.max(0, tokens.length - from));
  for (let i = 0; i < out.length; i++) out[i] = logSoftmaxAt(logits[from + i - 1], tokens[from + i]);
  return out;
};
