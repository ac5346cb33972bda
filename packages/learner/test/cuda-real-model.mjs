// The real-model agreement on CUDA (issue 27): SmolLM2-135M-Instruct's Q4_1 file, full fine-tuning
// (dequantized F32) and LoRA over the Q4_1 base, the CUDA learner against the CPU learner and
// llama.cpp (CUDA) on the learner's F32 export. A plain Node script for the packed GPU checkout:
//   bash .gpu/run.sh node packages/learner/test/cuda-real-model.mjs
// with WORKFLOW_R1_MODELS_DIR naming a folder that holds SmolLM2-135M-Instruct.Q4_1.gguf
// (tools/fetch-models.sh; the GPU machine has no registry, so copy the file there). Prints one
// JSON line per check and exits non-zero when one fails. Not run yet: no GPU has been lent since.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { realModelPath } from "@workflow-r1/gguf";
import { createLlamaCppPolicy } from "@workflow-r1/policy";
import { Effect } from "effect";
import { createGgmlLearner } from "../dist/index.js";

const run = (e) => Effect.runPromise(e);
const dir = mkdtempSync(join(tmpdir(), "wr1-cuda-real-"));
let failed = 0;
const report = (check, ok, details) => {
  if (!ok) failed++;
  console.log(JSON.stringify({ check, ok, ...details }));
};
const maxDiff = (a, b) => {
  let m = 0;
  a.forEach((row, i) => {
    for (let t = 1; t < row.length; t++) m = Math.max(m, Math.abs(row[t] - b[i][t]));
  });
  return m;
};

try {
  const base = realModelPath("smollm2");
  const policy = await createLlamaCppPolicy({
    modelPath: base,
    gpu: "cuda",
    contextSize: 512,
    sequences: 1,
    kvCacheType: "F32",
  });
  const text = [
    { role: "system", content: "Think inside <think></think>, then answer inside <answer></answer>." },
    {
      role: "user",
      content:
        "Which river flows through the city where the Eiffel Tower stands, and what divides its banks?",
    },
    {
      role: "assistant",
      content:
        "<think>The Eiffel Tower is in Paris; the Seine runs through it and splits it into the Left and Right Banks.</think><answer>the Seine</answer>",
    },
  ];
  const tokens = policy.renderChat(text);
  const batch = [{ tokens, mask: Uint8Array.from(tokens, (_, t) => (t === 0 ? 0 : 1)) }];
  const ml = [Float32Array.from(tokens, (_, t) => (t === 0 ? 0 : -1 / tokens.length))];
  for (const mode of ["full", "lora"]) {
    const config = {
      modelPath: base,
      optimizer: { learningRate: mode === "full" ? 1e-5 : 1e-3 },
      ...(mode === "lora" && { lora: { rank: 8 } }),
    };
    const cpu = createGgmlLearner({ ...config, threads: 8 });
    const gpu = createGgmlLearner({ ...config, gpu: true });
    const before = maxDiff(await run(cpu.logprobs(batch)), await run(gpu.logprobs(batch)));
    for (const l of [cpu, gpu]) {
      await run(l.backward(batch, ml));
      await run(l.step());
    }
    const after = maxDiff(await run(cpu.logprobs(batch)), await run(gpu.logprobs(batch)));
    report(`SmolLM2 ${mode}: CPU vs CUDA learner before and after a step`, before < 5e-2 && after < 5e-2, {
      before,
      after,
    });
    if (mode === "full") {
      const exported = join(dir, "smollm2-f32.gguf");
      await run(gpu.save(exported, { format: "gguf" }));
      await run(policy.reload({ kind: "gguf", path: exported }));
      const scored = await run(policy.score(tokens, 1));
      const fromPolicy = [Float32Array.from([Number.NaN, ...scored])];
      const diff = maxDiff(await run(gpu.logprobs(batch)), fromPolicy);
      report("SmolLM2 F32 export: llama.cpp (CUDA) vs the CUDA learner", diff < 2e-2, { maxAbsDiff: diff });
    }
    await cpu.dispose();
    await gpu.dispose();
  }
  await policy.dispose();
} catch (e) {
  report("ran", false, { error: String(e?.stack ?? e) });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failed === 0 ? 0 : 1);
