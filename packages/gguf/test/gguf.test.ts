import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createTinyLlama,
  f16ToF32,
  f32ToF16,
  GgmlType,
  GgufFormatError,
  gguf,
  parseGguf,
  readGguf,
  serializeGguf,
  writeGguf,
} from "../src/index.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "wr1-gguf-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("GGUF reader/writer", () => {
  it("round-trips typed metadata and F32/F16/raw tensors byte for byte", async () => {
    const path = join(dir, "rt.gguf");
    const file = {
      metadata: {
        "general.alignment": gguf.u32(32),
        a: gguf.u8(200),
        b: gguf.i8(-5),
        c: gguf.u16(60000),
        d: gguf.i16(-300),
        e: gguf.i32(-70000),
        f: gguf.f32(0.5),
        g: gguf.f64(Math.PI),
        h: gguf.u64(2n ** 40n),
        i: gguf.i64(-(2n ** 40n)),
        j: gguf.bool(true),
        k: gguf.string("héllo <|im_end|>"),
        l: gguf.array("string", ["x", "y z"]),
        m: gguf.array("i32", [1, -2, 3]),
      },
      tensors: [
        { name: "w32", type: GgmlType.F32, shape: [3, 2], data: Float32Array.from([1, 2, 3, 4, 5, -6.25]) },
        {
          name: "w16",
          type: GgmlType.F16,
          shape: [5],
          data: Float32Array.from([0.5, -1, 65504, 1e-7, 3.140625]),
        },
        {
          name: "q8",
          type: GgmlType.Q8_0,
          shape: [32],
          data: Uint8Array.from({ length: 34 }, (_, i) => i * 7),
        },
      ],
    };
    await writeGguf(path, file);
    const back = await readGguf(path);
    expect(back.metadata).toEqual(file.metadata);
    expect(back.tensors.map((t) => [t.name, t.type, t.shape])).toEqual(
      file.tensors.map((t) => [t.name, t.type, t.shape]),
    );
    expect(Array.from(back.tensors[0].data)).toEqual([1, 2, 3, 4, 5, -6.25]);
    expect(Array.from(back.tensors[1].data)).toEqual([0.5, -1, 65504, f16ToF32(f32ToF16(1e-7)), 3.140625]);
    expect(Array.from(back.tensors[2].data)).toEqual(Array.from(file.tensors[2].data));
    // Re-serialising what was read gives the same bytes.
    const again = Buffer.concat(serializeGguf(back));
    expect(again.equals(await readFile(path))).toBe(true);
  });

  it("converts F16 like ggml (round to nearest even, subnormals, infinities)", () => {
    expect(f32ToF16(1)).toBe(0x3c00);
    expect(f32ToF16(-2)).toBe(0xc000);
    expect(f32ToF16(65520)).toBe(0x7c00);
    expect(f32ToF16(2 ** -24)).toBe(1);
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie → even
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02);
    for (let h = 0; h < 0x7c00; h += 97) expect(f32ToF16(f16ToF32(h))).toBe(h);
  });

  it("names the file and byte offset of a corrupt or truncated file", async () => {
    const bad = join(dir, "bad.gguf");
    await writeFile(bad, "not a gguf at all");
    await expect(readGguf(bad)).rejects.toThrow(/bad\.gguf.*not a GGUF file/);
    const model = await createTinyLlama({
      path: join(dir, "t.gguf"),
      vocab: 260,
      dim: 8,
      layers: 1,
      heads: 2,
      kvHeads: 1,
      ffn: 16,
    });
    const bytes = await readFile(model.path);
    const cut = bytes.subarray(0, bytes.byteLength - 100);
    expect(() => parseGguf(cut, "cut.gguf")).toThrow(GgufFormatError);
    expect(() => parseGguf(cut, "cut.gguf")).toThrow(
      /cut\.gguf \(byte \d+\): truncated file: tensor output\.weight/,
    );
  });

  it("refuses tensors whose data does not match the shape", async () => {
    await expect(
      writeGguf(join(dir, "x.gguf"), {
        metadata: {},
        tensors: [{ name: "t", type: 0, shape: [4], data: new Float32Array(3) }],
      }),
    ).rejects.toThrow(/tensor t: expected a Float32Array of 4 values/);
  });
});

describe("createTinyLlama", () => {
  it("is deterministic in its seed", async () => {
    const a = await createTinyLlama({ path: join(dir, "a.gguf"), seed: 7 });
    const b = await createTinyLlama({ path: join(dir, "b.gguf"), seed: 7 });
    const c = await createTinyLlama({ path: join(dir, "c.gguf"), seed: 8 });
    const [ba, bb, bc] = await Promise.all([a, b, c].map((m) => readFile(m.path)));
    expect(ba.equals(bb)).toBe(true);
    expect(ba.equals(bc)).toBe(false);
  });

  for (const architecture of ["llama", "qwen2"] as const) {
    it(`writes a ${architecture} model that llama.cpp loads, tokenizes (ChatML specials) and samples`, async () => {
      const info = await createTinyLlama({ path: join(dir, `${architecture}.gguf`), architecture, seed: 1 });
      const llama = await getLlama({ gpu: false, logLevel: "error" as never, build: "never" });
      const model = await llama.loadModel({ modelPath: info.path });
      try {
        expect(model.tokens.eos).toBe(info.specialTokens["<|im_end|>"]);
        const ids = model.tokenize("<|im_start|>user\nhello world<|im_end|>", true);
        expect(ids[0]).toBe(info.specialTokens["<|im_start|>"]);
        expect(ids.at(-1)).toBe(info.specialTokens["<|im_end|>"]);
        expect(model.detokenize(model.tokenize("The answer is Paris. ü€"))).toBe("The answer is Paris. ü€");
        // Merges learned from the corpus shorten common words.
        expect(model.tokenize(" the").length).toBe(1);
        const context = await model.createContext({ contextSize: 256, threads: 2 });
        const sequence = context.getSequence();
        const out: number[] = [];
        for await (const t of sequence.evaluate(ids, { temperature: 1, seed: 3 })) {
          out.push(t);
          if (out.length === 20) break;
        }
        expect(out.length).toBeGreaterThan(0);
        for (const t of out) expect(t).toBeLessThan(info.vocab);
        await context.dispose();
      } finally {
        await model.dispose();
      }
    });
  }
});
