import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createTinyLlama, readGguf, referenceLogprobs, type TinyModelInfo } from "@workflow-r1/gguf";
import { getLlama, type Token } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNativeSampler } from "../src/index.js";
import { addonAvailable } from "../src/native/addon.js";

const packageDir = fileURLToPath(new URL("..", import.meta.url));

let dir: string;
let model: TinyModelInfo;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "wr1-native-sampler-"));
  model = await createTinyLlama({
    path: join(dir, "base.gguf"),
    vocab: 300,
    dim: 64,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    ffn: 128,
    seed: 11,
  });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const prompt = (i: number) => Int32Array.from({ length: 6 }, (_, j) => 1 + ((i * 17 + j * 5) % 250));

describe("native sampling engine", () => {
  it("samples with exact temperature-1 log-probabilities (against the plain-JS reference forward)", async () => {
    const sampler = createNativeSampler({
      modelPath: model.path,
      sequences: 2,
      contextPerSequence: 128,
      kvCacheType: "F32",
    });
    try {
      const seq = sampler.openSequence(prompt(1));
      const g = await seq.generate(new Int32Array(0), { maxTokens: 12, seed: 3 });
      expect(g.tokens.length).toBeGreaterThan(0);
      // Continue the same sequence: appended tokens, then more sampling (no re-evaluation).
      const g2 = await seq.generate(Int32Array.from([7, 8]), {
        maxTokens: 5,
        seed: 4,
        temperature: 0.7,
        topK: 20,
      });
      const all = [...prompt(1), ...g.tokens, 7, 8, ...g2.tokens];
      const reference = referenceLogprobs(await readGguf(model.path), all);
      const at = (k: number) => reference[k - 1]; // entry i is token i + 1
      let worst = 0;
      g.tokens.forEach((_, k) => {
        worst = Math.max(worst, Math.abs(g.logprobs[k] - at(6 + k)));
      });
      g2.tokens.forEach((_, k) => {
        worst = Math.max(worst, Math.abs(g2.logprobs[k] - at(6 + g.tokens.length + 2 + k)));
      });
      expect(worst).toBeLessThan(1e-3);
      expect(Array.from(seq.tokens())).toEqual(all);
      seq.close();
    } finally {
      await sampler.dispose();
    }
  });

  it("repeats itself for a seed, batches sequences that join while others run, and stops on strings and budgets", async () => {
    const sampler = createNativeSampler({
      modelPath: model.path,
      sequences: 4,
      contextPerSequence: 128,
      stepsPerCall: 4,
    });
    try {
      const run = (i: number, seed: number, maxTokens = 20) => {
        const s = sampler.openSequence(prompt(i));
        return s.generate(new Int32Array(0), { maxTokens, seed }).finally(() => s.close());
      };
      const a = await run(1, 9);
      const b = await run(1, 9);
      expect(Array.from(b.tokens)).toEqual(Array.from(a.tokens));
      // Four at once, one joining after the others have started.
      const decodesBefore = sampler.decodeCalls();
      const first = [run(2, 1), run(3, 2), run(4, 3)];
      await new Promise((r) => setTimeout(r, 0));
      const late = run(1, 9);
      const results = await Promise.all([...first, late]);
      expect(Array.from(results[3].tokens)).toEqual(Array.from(a.tokens));
      for (const r of results) expect(r.finishReason === "length" ? r.tokens.length : 20).toBe(20);
      // Fewer decodes than tokens sampled: sequences shared steps.
      const sampled = results.reduce((n, r) => n + r.tokens.length, 0);
      expect(sampler.decodeCalls() - decodesBefore).toBeLessThan(sampled);
      // A stop string: the text of the 5th sampled token ends the same seeded generation there.
      const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });
      const vocabModel = await llama.loadModel({ modelPath: model.path, vocabOnly: true });
      const piece = vocabModel.detokenize([a.tokens[4] as Token], true);
      await vocabModel.dispose();
      expect(piece.length).toBeGreaterThan(0);
      const s = sampler.openSequence(prompt(1));
      const g = await s.generate(new Int32Array(0), { maxTokens: 20, seed: 9, stop: [piece] });
      s.close();
      expect(g.finishReason).toBe("stop");
      expect(g.stopString).toBe(piece);
      expect(g.tokens.length).toBeLessThanOrEqual(5);
      expect(Array.from(g.tokens)).toEqual(Array.from(a.tokens.slice(0, g.tokens.length)));
    } finally {
      await sampler.dispose();
    }
  });

  it("per-sequence KV streams give the unified buffer's log-probabilities", async () => {
    const generateAll = async (unifiedKv: boolean) => {
      const sampler = createNativeSampler({
        modelPath: model.path,
        sequences: 3,
        contextPerSequence: 64,
        kvCacheType: "F32",
        unifiedKv,
      });
      try {
        // Slots freed out of order, then reused: the engine orders each batch by sequence id.
        const warm = [0, 1, 2].map((i) => sampler.openSequence(prompt(i)));
        warm[1].close();
        warm[0].close();
        warm[2].close();
        return await Promise.all(
          [3, 4, 5].map(async (i) => {
            const seq = sampler.openSequence(prompt(i));
            const g = await seq.generate(Int32Array.from([9]), { maxTokens: 10, seed: i });
            seq.close();
            return g;
          }),
        );
      } finally {
        await sampler.dispose();
      }
    };
    const unified = await generateAll(true);
    const split = await generateAll(false);
    split.forEach((g, i) => {
      const n = Math.min(g.tokens.length, unified[i].tokens.length);
      expect(n).toBeGreaterThan(0);
      expect(Array.from(g.tokens.slice(0, n))).toEqual(Array.from(unified[i].tokens.slice(0, n)));
      for (let k = 0; k < n; k++) expect(Math.abs(g.logprobs[k] - unified[i].logprobs[k])).toBeLessThan(1e-4);
    });
  });

  it("reports bad input as errors", async () => {
    const sampler = createNativeSampler({ modelPath: model.path, sequences: 1, contextPerSequence: 16 });
    try {
      const s = sampler.openSequence(prompt(1));
      await expect(s.generate(Int32Array.from([999]), { maxTokens: 1 })).rejects.toThrow(
        /outside the vocabulary/,
      );
      expect(() => sampler.openSequence(prompt(2))).toThrow(/slots are in use/);
      await expect(s.generate(new Int32Array(20), { maxTokens: 1 })).rejects.toThrow(/context holds 16/);
      s.close();
    } finally {
      await sampler.dispose();
    }
  });

  it("scores teacher-forced log-probabilities like the reference forward, in chunks beside a generation", async () => {
    // A batch of 8 tokens: the 40-token sequence is scored over several decodes that also carry
    // another sequence's sampling steps.
    const sampler = createNativeSampler({
      modelPath: model.path,
      sequences: 2,
      contextPerSequence: 64,
      batchSize: 8,
      kvCacheType: "F32",
    });
    try {
      const tokens = Int32Array.from({ length: 40 }, (_, i) => 1 + ((i * 37) % 290));
      const seq = sampler.openSequence(prompt(2));
      const [scores] = await Promise.all([
        sampler.score(tokens, 5),
        seq.generate(new Int32Array(0), { maxTokens: 20, seed: 1 }),
      ]);
      await seq.close();
      const reference = referenceLogprobs(await readGguf(model.path), Array.from(tokens), 5);
      expect(scores.length).toBe(35);
      let worst = 0;
      scores.forEach((x, k) => {
        worst = Math.max(worst, Math.abs(x - reference[k]));
      });
      expect(worst).toBeLessThan(1e-3);
      await expect(sampler.score(tokens, 0)).rejects.toThrow(/from must be in \[1, 40\]/);
      expect((await sampler.score(tokens, 40)).length).toBe(0);
    } finally {
      await sampler.dispose();
    }
  });

  it("a sequence the full batch has no room for waits a step (it reads no stale logits row)", async () => {
    // Batches of 8 tokens: sequence 1's 30-token prompt fills them while sequences 0 and 2 sample;
    // sequence 2, after it in id order, gets no room in those steps and must sample nothing then.
    // (It used to read the previous step's row: llama.cpp returned no logits and the process crashed.)
    const sampler = createNativeSampler({
      modelPath: model.path,
      sequences: 3,
      contextPerSequence: 128,
      batchSize: 8,
      stepsPerCall: 4,
    });
    try {
      const seqs = [
        sampler.openSequence(prompt(1)),
        sampler.openSequence(Int32Array.of(5)),
        sampler.openSequence(prompt(3)),
      ];
      const first = seqs[0]!.generate(new Int32Array(0), { maxTokens: 100, seed: 1 });
      const third = seqs[2]!.generate(new Int32Array(0), { maxTokens: 100, seed: 3 });
      // Join once sequences 0 and 2 have sampled from rows of their own.
      while (sampler.decodeCalls() < 2) await new Promise((r) => setImmediate(r));
      const long = Int32Array.from({ length: 30 }, (_, i) => 1 + ((i * 13) % 280));
      const second = seqs[1]!.generate(long, { maxTokens: 4, seed: 2 });
      const results = await Promise.all([first, second, third]);
      for (const g of results) expect(["length", "eos"]).toContain(g.finishReason);
      // Alone, sequence 2 samples the same tokens: sharing the batch changed nothing.
      await Promise.all(seqs.map((q) => q.close()));
      const alone = sampler.openSequence(prompt(3));
      const again = await alone.generate(new Int32Array(0), { maxTokens: 100, seed: 3 });
      await alone.close();
      expect(Array.from(again.tokens)).toEqual(Array.from(results[2]!.tokens));
      expect(again.finishReason).toBe(results[2]!.finishReason);
    } finally {
      await sampler.dispose();
    }
  });

  it("ends a generation at the next step when its signal aborts, then frees the slot", async () => {
    const sampler = createNativeSampler({
      modelPath: model.path,
      sequences: 1,
      contextPerSequence: 4096,
      stepsPerCall: 1,
    });
    try {
      const seq = sampler.openSequence(prompt(3));
      const abort = new AbortController();
      const decodesBefore = sampler.decodeCalls();
      const running = seq.generate(new Int32Array(0), { maxTokens: 4000, seed: 5 }, abort.signal);
      while (sampler.decodeCalls() - decodesBefore < 3) await new Promise((r) => setTimeout(r, 1));
      abort.abort();
      await expect(running).rejects.toThrow(/interrupted/);
      const atAbort = sampler.decodeCalls() - decodesBefore;
      expect(atAbort).toBeLessThan(4000);
      await seq.close();
      // The only slot is free again and the engine still samples.
      const next = sampler.openSequence(prompt(4));
      const g = await next.generate(new Int32Array(0), { maxTokens: 3, seed: 1 });
      expect(g.tokens.length).toBeGreaterThan(0);
      await next.close();
    } finally {
      await sampler.dispose();
    }
  });

  // One process cannot load both flavours (they would mix two ggml builds), so a child runs it.
  it.skipIf(!addonAvailable("cuda"))(
    "the CUDA flavour (linked against node-llama-cpp's CUDA libraries) loads and samples, on its CPU backends without a GPU",
    () => {
      const script = `
        import { createNativeSampler } from "@workflow-r1/policy";
        const s = createNativeSampler({ modelPath: ${JSON.stringify(model.path)}, flavor: "cuda", contextPerSequence: 64 });
        const q = s.openSequence(Int32Array.of(1, 2, 3));
        const g = await q.generate(new Int32Array(0), { maxTokens: 5, seed: 1 });
        await q.close();
        await s.dispose();
        console.log(JSON.stringify({ n: g.tokens.length, finite: g.logprobs.every(Number.isFinite) }));`;
      const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
        cwd: packageDir,
        encoding: "utf8",
        timeout: 60_000,
      });
      expect(child.status, child.stderr).toBe(0);
      expect(JSON.parse(child.stdout.trim().split("\n").at(-1) ?? "")).toEqual({ n: 5, finite: true });
    },
  );
});
