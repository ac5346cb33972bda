import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTinyLlama, type TinyModelOptions } from "@workflow-r1/gguf";

/** A temporary folder removed by the returned cleanup. */
export const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "wr1-learner-"));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
};

export const tinyModel = (dir: string, name: string, options: TinyModelOptions = {}) =>
  createTinyLlama({
    path: join(dir, `${name}.gguf`),
    vocab: 300,
    dim: 32,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    ffn: 64,
    context: 64,
    ...options,
  });

/** Deterministic pseudo-random token sequences. */
export const randomSequences = (
  count: number,
  lengths: ReadonlyArray<number>,
  vocab: number,
  seed: number,
) => {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
  return Array.from({ length: count }, (_, i) => {
    const n = lengths[i % lengths.length];
    const tokens = new Int32Array(n);
    for (let t = 0; t < n; t++) tokens[t] = Math.floor(next() * vocab);
    const mask = new Uint8Array(n);
    for (let t = 1; t < n; t++) mask[t] = 1;
    return { tokens, mask, next };
  });
};
