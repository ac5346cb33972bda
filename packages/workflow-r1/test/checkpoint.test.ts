/**
 * Checkpoints are written whole or not at all: `save` fills a temporary directory and renames it;
 * a failing fill (the learner could not write its state) is a typed failure that leaves `latest`
 * on the previous checkpoint and no partial directory behind.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { NativeLearnerError } from "@workflow-r1/core";
import { Effect } from "effect";
import { afterEach, describe, expect, it } from "vitest";
import { Checkpoints, type LoopState } from "../src/train/checkpoint.js";
import { failure, run } from "./fixtures/effects.js";

const state = (step: number): LoopState => ({
  step,
  dataPosition: step * 2,
  epoch: 0,
  rngState: 42 + step,
  policyWeights: "",
  weightsKind: "gguf",
});

let out: string;
afterEach(() => fs.rmSync(out, { recursive: true, force: true }));

describe("Checkpoints.save", () => {
  it("writes the filled directory and state.json, then points latest at it", async () => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-ckpt-"));
    const checkpoints = new Checkpoints(out);
    const dir = await run(
      checkpoints.save(state(1), (d) =>
        Effect.sync(() => fs.writeFileSync(path.join(d, "learner.state"), "w1")),
      ),
    );
    expect(path.basename(dir)).toBe("step-000001");
    expect(fs.readFileSync(path.join(dir, "learner.state"), "utf8")).toBe("w1");
    expect(await run(checkpoints.latest())).toEqual({ dir, state: state(1) });
  });

  it("a failing fill is a typed failure; latest stays on the last complete checkpoint", async () => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-ckpt-"));
    const checkpoints = new Checkpoints(out);
    const first = await run(checkpoints.save(state(1), () => Effect.void));
    const error = await failure(
      checkpoints.save(state(2), (d) =>
        Effect.sync(() => fs.writeFileSync(path.join(d, "learner.state"), "half")).pipe(
          Effect.andThen(
            Effect.fail(new NativeLearnerError({ operation: "saveState", message: "disk full" })),
          ),
        ),
      ),
    );
    expect(error).toMatchObject({ _tag: "NativeLearnerError", message: "disk full" });
    expect((await run(checkpoints.latest()))?.dir).toBe(first);
    expect(fs.readdirSync(path.join(out, "checkpoints")).sort()).toEqual(["latest", "step-000001"]);
  });
});

describe("Checkpoints.latest and prune", () => {
  it("a latest pointer to a directory without state.json is a ConfigError saying the run is damaged", async () => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-ckpt-"));
    const checkpoints = new Checkpoints(out);
    fs.mkdirSync(path.join(out, "checkpoints", "step-000003"), { recursive: true });
    fs.writeFileSync(path.join(out, "checkpoints", "latest"), "step-000003");
    const error = await failure(checkpoints.latest());
    expect(error).toMatchObject({ _tag: "ConfigError" });
    expect(error.message).toMatch(/step-000003 .* has no state\.json; the run directory is damaged/);
  });

  it("prune keeps the newest complete checkpoints and removes partial ones", async () => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-ckpt-"));
    const checkpoints = new Checkpoints(out);
    for (const step of [1, 2, 3]) await run(checkpoints.save(state(step), () => Effect.void));
    fs.mkdirSync(path.join(out, "checkpoints", ".step-000004.partial-1"));
    await run(checkpoints.prune(2));
    expect(fs.readdirSync(path.join(out, "checkpoints")).sort()).toEqual([
      "latest",
      "step-000002",
      "step-000003",
    ]);
  });
});
