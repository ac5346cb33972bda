/**
 * Checkpoints are written whole or not at all: `save` fills a temporary directory and renames it;
 * a failing fill (the learner could not write its state) is a typed failure that leaves `latest`
 * on the previous checkpoint and no partial directory behind.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { NativeLearnerError } from "@workflow-r1/core";
import { Effect, Exit } from "effect";
import { afterEach, describe, expect, it } from "vitest";
import { Checkpoints, type LoopState } from "../src/train/checkpoint.js";

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
    const dir = await Effect.runPromise(
      checkpoints.save(state(1), (d) =>
        Effect.sync(() => fs.writeFileSync(path.join(d, "learner.state"), "w1")),
      ),
    );
    expect(path.basename(dir)).toBe("step-000001");
    expect(fs.readFileSync(path.join(dir, "learner.state"), "utf8")).toBe("w1");
    expect(checkpoints.latest()).toEqual({ dir, state: state(1) });
  });

  it("a failing fill is a typed failure; latest stays on the last complete checkpoint", async () => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-ckpt-"));
    const checkpoints = new Checkpoints(out);
    const first = await Effect.runPromise(checkpoints.save(state(1), () => Effect.void));
    const exit = await Effect.runPromiseExit(
      checkpoints.save(state(2), (d) =>
        Effect.sync(() => fs.writeFileSync(path.join(d, "learner.state"), "half")).pipe(
          Effect.andThen(
            Effect.fail(new NativeLearnerError({ operation: "saveState", message: "disk full" })),
          ),
        ),
      ),
    );
    expect(Exit.isFailure(exit)).toBe(true);
    if (Exit.isFailure(exit)) expect(String(exit.cause)).toContain("disk full");
    expect(checkpoints.latest()?.dir).toBe(first);
    expect(fs.readdirSync(path.join(out, "checkpoints")).sort()).toEqual(["latest", "step-000001"]);
  });
});
