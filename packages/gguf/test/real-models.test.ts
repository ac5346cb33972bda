import { copyFile, mkdtemp, open, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GgmlType, GgufFormatError, REAL_MODELS, readGguf, realModelPath } from "../src/index.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "wr1-real-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("the real models tools/fetch-models.sh fetches", () => {
  it("a missing model fails with the command that fetches it", () => {
    const previous = process.env.WORKFLOW_R1_MODELS_DIR;
    process.env.WORKFLOW_R1_MODELS_DIR = dir;
    try {
      expect(() => realModelPath("smollm2")).toThrow(/tools\/fetch-models\.sh smollm2/);
      expect(() => realModelPath("gemma3")).toThrow(new RegExp(`${REAL_MODELS.gemma3.file} does not exist`));
    } finally {
      if (previous === undefined) delete process.env.WORKFLOW_R1_MODELS_DIR;
      else process.env.WORKFLOW_R1_MODELS_DIR = previous;
    }
  });

  it("SmolLM2's header is what its published config says, read from the head of the file only", async () => {
    const file = realModelPath("smollm2");
    const g = await readGguf(file, { tensorData: false });
    const meta = (key: string) => g.metadata[key]?.value;
    expect(meta("general.architecture")).toBe("llama");
    expect(meta("llama.block_count")).toBe(30);
    expect(meta("llama.embedding_length")).toBe(576);
    expect(meta("llama.attention.head_count")).toBe(9);
    expect(meta("llama.attention.head_count_kv")).toBe(3);
    expect(meta("llama.rope.freq_base")).toBe(100000);
    // Tied embeddings: no output.weight; the token embedding is Q8_0, the matrices Q4_1.
    const types = new Map(g.tensors.map((t) => [t.name, t.type]));
    expect(types.has("output.weight")).toBe(false);
    expect(types.get("token_embd.weight")).toBe(GgmlType.Q8_0);
    expect(types.get("blk.0.attn_q.weight")).toBe(GgmlType.Q4_1);
    expect(g.tensors).toHaveLength(3 + 30 * 9 - 1);
    expect((await stat(file)).size).toBeGreaterThan(90e6);
  });

  it("a metadata-only read of a file cut inside its header says it is truncated; other bytes are not a GGUF", async () => {
    const cut = join(dir, "cut.gguf");
    const head = new Uint8Array(1 << 20);
    const f = await open(realModelPath("smollm2"), "r");
    await f.read(head, 0, head.length, 0);
    await f.close();
    await writeFile(cut, head);
    await expect(readGguf(cut, { tensorData: false })).rejects.toThrow(/truncated file/);
    const junk = join(dir, "junk.gguf");
    await copyFile(new URL(import.meta.url).pathname, junk);
    const error = await readGguf(junk, { tensorData: false }).catch((e) => e);
    expect(error).toBeInstanceOf(GgufFormatError);
    expect(String(error.message)).toMatch(/not a GGUF file/);
  });
});
