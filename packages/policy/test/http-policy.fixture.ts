/**
 * The tiny random llama GGUF the HttpPolicy tests serve: from the package's `createTinyLlama`
 * when it is exported, else from the minimal writer below (F32 llama, byte-level gpt2 vocabulary
 * of 260 tokens, no chat template) so these tests do not wait on it.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";

/** GPT-2's byte → printable character map, the form byte-level BPE vocabularies store. */
const byteToUnicode = (): string[] => {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const out: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    out[b] = String.fromCodePoint(printable.includes(b) ? b : 256 + extra++);
  }
  return out;
};

const writeTinyLlama = (path: string, seed = 12345): void => {
  const nEmbd = 32;
  const nHead = 4;
  const nHeadKv = 2;
  const nLayer = 2;
  const nFf = 64;
  const tokens = [...byteToUnicode(), "Ġt", "he", "er", "<|endoftext|>"];
  const merges = ["Ġ t", "h e", "e r"];
  const nVocab = tokens.length;
  let state = seed;
  const random = () => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state / 0x7fffffff - 0.5;
  };
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    return b;
  };
  const u64 = (v: number) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    return b;
  };
  const f32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    return b;
  };
  const str = (s: string) => {
    const b = Buffer.from(s, "utf8");
    return Buffer.concat([u64(b.length), b]);
  };
  const array = (type: number, items: Buffer[]) => Buffer.concat([u32(type), u64(items.length), ...items]);
  // GGUF value types: 4 u32, 5 i32, 6 f32, 7 bool, 8 string, 9 array.
  const kvs: Array<[string, number, Buffer]> = [
    ["general.architecture", 8, str("llama")],
    ["general.alignment", 4, u32(32)],
    ["general.file_type", 4, u32(0)],
    ["llama.context_length", 4, u32(512)],
    ["llama.embedding_length", 4, u32(nEmbd)],
    ["llama.block_count", 4, u32(nLayer)],
    ["llama.feed_forward_length", 4, u32(nFf)],
    ["llama.attention.head_count", 4, u32(nHead)],
    ["llama.attention.head_count_kv", 4, u32(nHeadKv)],
    ["llama.rope.dimension_count", 4, u32(nEmbd / nHead)],
    ["llama.rope.freq_base", 6, f32(10000)],
    ["llama.attention.layer_norm_rms_epsilon", 6, f32(1e-5)],
    ["llama.vocab_size", 4, u32(nVocab)],
    ["tokenizer.ggml.model", 8, str("gpt2")],
    ["tokenizer.ggml.pre", 8, str("gpt-2")],
    ["tokenizer.ggml.tokens", 9, array(8, tokens.map(str))],
    [
      "tokenizer.ggml.token_type",
      9,
      array(
        5,
        tokens.map((_, i) => u32(i === nVocab - 1 ? 3 : 1)),
      ),
    ],
    ["tokenizer.ggml.merges", 9, array(8, merges.map(str))],
    ["tokenizer.ggml.bos_token_id", 4, u32(nVocab - 1)],
    ["tokenizer.ggml.eos_token_id", 4, u32(nVocab - 1)],
    ["tokenizer.ggml.add_bos_token", 7, Buffer.from([1])],
  ];
  const kvDim = (nEmbd / nHead) * nHeadKv;
  // [name, ggml dims (innermost first), random weights (else ones: norms)]
  const tensors: Array<[string, number[], boolean]> = [["token_embd.weight", [nEmbd, nVocab], true]];
  for (let l = 0; l < nLayer; l++) {
    tensors.push(
      [`blk.${l}.attn_norm.weight`, [nEmbd], false],
      [`blk.${l}.attn_q.weight`, [nEmbd, nEmbd], true],
      [`blk.${l}.attn_k.weight`, [nEmbd, kvDim], true],
      [`blk.${l}.attn_v.weight`, [nEmbd, kvDim], true],
      [`blk.${l}.attn_output.weight`, [nEmbd, nEmbd], true],
      [`blk.${l}.ffn_norm.weight`, [nEmbd], false],
      [`blk.${l}.ffn_gate.weight`, [nEmbd, nFf], true],
      [`blk.${l}.ffn_up.weight`, [nEmbd, nFf], true],
      [`blk.${l}.ffn_down.weight`, [nFf, nEmbd], true],
    );
  }
  tensors.push(["output_norm.weight", [nEmbd], false], ["output.weight", [nEmbd, nVocab], true]);
  const infos: Buffer[] = [];
  const data: Buffer[] = [];
  let offset = 0;
  for (const [name, dims, isRandom] of tensors) {
    const n = dims.reduce((a, b) => a * b, 1);
    const padded = Math.ceil((n * 4) / 32) * 32;
    const buffer = Buffer.alloc(padded);
    for (let i = 0; i < n; i++) buffer.writeFloatLE(isRandom ? random() * 1.2 : 1, i * 4);
    infos.push(Buffer.concat([str(name), u32(dims.length), ...dims.map(u64), u32(0), u64(offset)]));
    data.push(buffer);
    offset += padded;
  }
  const header = Buffer.concat([
    Buffer.from("GGUF"),
    u32(3),
    u64(tensors.length),
    u64(kvs.length),
    ...kvs.map(([k, type, value]) => Buffer.concat([str(k), u32(type), value])),
    ...infos,
  ]);
  writeFileSync(path, Buffer.concat([header, Buffer.alloc((32 - (header.length % 32)) % 32), ...data]));
};

export const makeTinyModel = async (dir: string): Promise<string> => {
  const path = join(dir, "tiny.gguf");
  const policyPackage = (await import("../src/index.js")) as Record<string, unknown>;
  const create = policyPackage.createTinyLlama as
    | ((options: { path: string }) => Promise<unknown>)
    | undefined;
  if (create !== undefined) await create({ path });
  else writeTinyLlama(path);
  return path;
};
