import { realModelPath } from "@workflow-r1/gguf";
import { describe, expect, it } from "vitest";
import { createGgmlLearner, TRAINABLE_ARCHITECTURES } from "../src/index.js";

describe("the architectures the learner trains", () => {
  it("TRAINABLE_ARCHITECTURES is the native table: Gemma 3 is refused with exactly those named", () => {
    let message = "";
    try {
      createGgmlLearner({ modelPath: realModelPath("gemma3"), threads: 1 });
    } catch (e) {
      message = e instanceof Error ? e.message : String(e);
    }
    expect(message).toContain(
      `unsupported architecture gemma3 (supported: ${TRAINABLE_ARCHITECTURES.join(", ")})`,
    );
  });
});
