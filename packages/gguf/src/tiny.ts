/**
 * Tiny random models in GGUF for tests and benchmarks: a valid `llama` (or `qwen2`) architecture
 * file with a byte-level BPE tokenizer and a ChatML template that llama.cpp loads and samples.
 */
import { Random } from "@workflow-r1/core";
import { GgmlType, type GgufFile, type GgufMetadataValue, type GgufTensor, gguf, writeGguf } from "./gguf.js";
import { buildByteBpeVocabulary, CHATML_TEMPLATE, type TinyTokenizerOptions } from "./tokenizer.js";

export interface TinyModelOptions {
  /** Vocabulary size (256 bytes + merges + specials). Default 320. */
  readonly vocab?: number;
  /** Embedding width. Default 64. */
  readonly dim?: number;
  /** Transformer blocks. Default 2. */
  readonly layers?: number;
  /** Attention heads. Default 4. */
  readonly heads?: number;
  /** Key/value heads (grouped-query attention). Default 2. */
  readonly kvHeads?: number;
  /** Feed-forward width. Default 128. */
  readonly ffn?: number;
  /** Training context length written to the metadata. Default 512. */
  readonly context?: number;
  /** Seed of the weights; the same options give the same bytes. Default 0. */
  readonly seed?: number;
  /** `llama` (RoPE NORM mode) or `qwen2` (q/k/v biases, RoPE NEOX mode). Default `llama`. */
  readonly architecture?: "llama" | "qwen2";
  readonly tokenizer?: TinyTokenizerOptions;
  /** Standard deviation of the weights is `initScale / sqrt(fan_in)`. Default 1. */
  readonly initScale?: number;
  /** Store weight matrices as F16 instead of F32. Default false. */
  readonly f16?: boolean;
  readonly ropeFreqBase?: number;
  readonly rmsEpsilon?: number;
}

export interface TinyModelInfo {
  readonly path: string;
  readonly architecture: "llama" | "qwen2";
  readonly vocab: number;
  readonly dim: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly ffn: number;
  readonly context: number;
  readonly seed: number;
  /** Token ids of the special tokens by text (`<|im_end|>`, …). */
  readonly specialTokens: Readonly<Record<string, number>>;
  readonly bosTokenId: number;
  readonly eosTokenId: number;
  /** The file written (metadata and tensors), for reference forwards and LoRA factories. */
  readonly file: GgufFile;
}

/**
 * The weights' and sampler's generator: core's splitmix32 `Random` (seed 0 starts from the golden
 * ratio constant, as it always has, so every seed builds the model it built before).
 */
export const createRng = (seed: number): Random => new Random(seed >>> 0 || 0x9e3779b9, "splitmix32");

/** Build (without writing) a tiny model's GGUF. */
export const buildTinyLlama = (options: TinyModelOptions = {}) => {
  const vocab = options.vocab ?? 320;
  const dim = options.dim ?? 64;
  const layers = options.layers ?? 2;
  const heads = options.heads ?? 4;
  const kvHeads = options.kvHeads ?? 2;
  const ffn = options.ffn ?? 128;
  const context = options.context ?? 512;
  const seed = options.seed ?? 0;
  const arch = options.architecture ?? "llama";
  const scale = options.initScale ?? 1;
  if (dim % heads !== 0) throw new RangeError(`dim ${dim} must be a multiple of heads ${heads}`);
  if (heads % kvHeads !== 0) throw new RangeError(`heads ${heads} must be a multiple of kvHeads ${kvHeads}`);
  const headDim = dim / heads;
  if (headDim % 2 !== 0) throw new RangeError(`head dimension ${headDim} must be even for RoPE`);
  const tok = buildByteBpeVocabulary(vocab, options.tokenizer);
  const rng = createRng(seed);
  const weightType = options.f16 ? GgmlType.F16 : GgmlType.F32;
  const tensors: GgufTensor[] = [];
  const matrix = (name: string, inner: number, outer: number, std = scale / Math.sqrt(inner)) => {
    const data = new Float32Array(inner * outer);
    for (let i = 0; i < data.length; i++) data[i] = rng.normal() * std;
    tensors.push({ name, type: weightType, shape: [inner, outer], data });
  };
  const vector = (name: string, n: number, base: number, std: number) => {
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = base + rng.normal() * std;
    tensors.push({ name, type: GgmlType.F32, shape: [n], data });
  };
  matrix("token_embd.weight", dim, vocab, 1);
  for (let l = 0; l < layers; l++) {
    vector(`blk.${l}.attn_norm.weight`, dim, 1, 0.1);
    matrix(`blk.${l}.attn_q.weight`, dim, heads * headDim);
    matrix(`blk.${l}.attn_k.weight`, dim, kvHeads * headDim);
    matrix(`blk.${l}.attn_v.weight`, dim, kvHeads * headDim);
    if (arch === "qwen2") {
      vector(`blk.${l}.attn_q.bias`, heads * headDim, 0, 0.1);
      vector(`blk.${l}.attn_k.bias`, kvHeads * headDim, 0, 0.1);
      vector(`blk.${l}.attn_v.bias`, kvHeads * headDim, 0, 0.1);
    }
    matrix(`blk.${l}.attn_output.weight`, heads * headDim, dim);
    vector(`blk.${l}.ffn_norm.weight`, dim, 1, 0.1);
    matrix(`blk.${l}.ffn_gate.weight`, dim, ffn);
    matrix(`blk.${l}.ffn_up.weight`, dim, ffn);
    matrix(`blk.${l}.ffn_down.weight`, ffn, dim);
  }
  vector("output_norm.weight", dim, 1, 0.1);
  matrix("output.weight", dim, vocab, (2 * scale) / Math.sqrt(dim));

  const bos = tok.special["<|endoftext|>"] ?? vocab - 1;
  const eos = tok.special["<|im_end|>"] ?? tok.special["<|endoftext|>"] ?? vocab - 1;
  const a = arch;
  const metadata: Record<string, GgufMetadataValue> = {
    "general.architecture": gguf.string(a),
    "general.name": gguf.string(`tiny-${a}-${dim}x${layers}-seed${seed}`),
    "general.alignment": gguf.u32(32),
    "general.file_type": gguf.u32(options.f16 ? 1 : 0),
    [`${a}.context_length`]: gguf.u32(context),
    [`${a}.embedding_length`]: gguf.u32(dim),
    [`${a}.block_count`]: gguf.u32(layers),
    [`${a}.feed_forward_length`]: gguf.u32(ffn),
    [`${a}.attention.head_count`]: gguf.u32(heads),
    [`${a}.attention.head_count_kv`]: gguf.u32(kvHeads),
    [`${a}.rope.dimension_count`]: gguf.u32(headDim),
    [`${a}.rope.freq_base`]: gguf.f32(options.ropeFreqBase ?? 10000),
    [`${a}.attention.layer_norm_rms_epsilon`]: gguf.f32(options.rmsEpsilon ?? 1e-5),
    [`${a}.vocab_size`]: gguf.u32(vocab),
    "tokenizer.ggml.model": gguf.string("gpt2"),
    "tokenizer.ggml.pre": gguf.string(a === "qwen2" ? "qwen2" : "gpt-2"),
    "tokenizer.ggml.tokens": gguf.array("string", tok.tokens),
    "tokenizer.ggml.token_type": gguf.array("i32", tok.tokenTypes),
    "tokenizer.ggml.merges": gguf.array("string", tok.merges),
    "tokenizer.ggml.bos_token_id": gguf.u32(bos),
    "tokenizer.ggml.eos_token_id": gguf.u32(eos),
    "tokenizer.ggml.padding_token_id": gguf.u32(bos),
    "tokenizer.ggml.add_bos_token": gguf.bool(false),
  };
  if (tok.special["<|im_end|>"] !== undefined)
    metadata["tokenizer.ggml.eot_token_id"] = gguf.u32(tok.special["<|im_end|>"]);
  const template = options.tokenizer?.chatTemplate ?? CHATML_TEMPLATE;
  if (template !== false) metadata["tokenizer.chat_template"] = gguf.string(template);
  const file: GgufFile = { version: 3, metadata, tensors };
  return {
    file,
    info: {
      architecture: arch,
      vocab,
      dim,
      layers,
      heads,
      kvHeads,
      headDim,
      ffn,
      context,
      seed,
      specialTokens: tok.special,
      bosTokenId: bos,
      eosTokenId: eos,
      file,
    },
  };
};

/** Write a tiny random model to `path` (atomically) and describe it. Deterministic in `seed`. */
export const createTinyLlama = async (
  options: TinyModelOptions & { readonly path: string },
): Promise<TinyModelInfo> => {
  const { file, info } = buildTinyLlama(options);
  await writeGguf(options.path, file);
  return { ...info, path: options.path };
};
