import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

// The CUDA checks need an addon built with WORKFLOW_R1_CUDA=1 (scripts/build-cuda.sh) and a GPU;
// without them they are skipped. The same script runs alone on a GPU machine without vitest.
const cuda = process.env.WORKFLOW_R1_CUDA === "1";

describe.skipIf(!cuda)("CUDA (WORKFLOW_R1_CUDA=1)", () => {
  it("agrees with the CPU (full and LoRA over F32/F16/BF16/Q8_0/Q4_K bases), packs, and reports unsupported ops", () => {
    const script = join(import.meta.dirname, "cuda-checks.mjs");
    const r = spawnSync(process.execPath, [script], { encoding: "utf8", timeout: 600_000 });
    const lines = r.stdout
      .trim()
      .split("\n")
      .filter((l) => l.startsWith("{"));
    const failures = lines.map((l) => JSON.parse(l)).filter((x) => x.ok === false);
    expect(failures).toEqual([]);
    expect(r.status).toBe(0);
  });
});
