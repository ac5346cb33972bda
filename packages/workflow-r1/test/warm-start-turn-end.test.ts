/**
 * The warm start ends each demonstration with the chat template's turn-end token (PolicyInfo's
 * `turnEndToken`: ChatML's `<|im_end|>`), not the lowest end-of-generation id (here, as in SmolLM2,
 * `<|endoftext|>`), and renders the observations as the policy maps them (a user turn for ChatML).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  Environment,
  type EnvironmentPlugin,
  Learner,
  type LearnerShape,
  Policy,
  Random,
  type Task,
} from "@workflow-r1/core";
import { createTinyLlama } from "@workflow-r1/gguf";
import { createLlamaCppPolicy } from "@workflow-r1/policy";
import { Effect, Layer } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TrainConfig } from "../src/config.js";
import { warmStart } from "../src/train/warm-start.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "wr1-warm-end-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("warm-start demonstrations", () => {
  it("end with the template's turn-end token and hold observations as the policy renders them", async () => {
    const tiny = await createTinyLlama({
      path: join(dir, "tiny.gguf"),
      vocab: 300,
      dim: 16,
      layers: 1,
      seed: 2,
    });
    const policy = await createLlamaCppPolicy({
      modelPath: tiny.path,
      gpu: false,
      contextSize: 256,
      sequences: 1,
      threads: 1,
    });
    try {
      const imEnd = tiny.specialTokens["<|im_end|>"]!;
      const info = policy.info();
      expect(info.turnEndToken).toBe(imEnd);
      // The old choice, endOfTurnTokens[0], is another token (<|endoftext|>).
      expect(info.endOfTurnTokens[0]).not.toBe(imEnd);

      const task: Task = { id: "t1", question: "Who wrote Hamlet?" };
      const actions = ["<tool> search: Hamlet </tool>", "<answer> Shakespeare </answer>"];
      const plugin = {
        name: "fake",
        description: "fake",
        demonstrations: () => actions,
      } as unknown as EnvironmentPlugin;
      const env = Environment.of({
        name: "fake",
        stopSequences: ["</tool>", "</answer>"],
        reset: () =>
          Effect.succeed({
            messages: [
              { role: "system", content: "Be brief." },
              { role: "user", content: task.question },
            ],
            step: (action: string) =>
              Effect.succeed(
                action.includes("<answer>")
                  ? { _tag: "Done", operatorCalls: [], reward: 1, rewardParts: {} }
                  : { _tag: "Observation", observation: "Shakespeare wrote it.", operatorCalls: [] },
              ),
            finish: () => Effect.succeed({ reward: 0, rewardParts: {} }),
          } as never),
      });
      const batches: Array<ReadonlyArray<{ tokens: Int32Array; mask: Uint8Array }>> = [];
      const learner = {
        backward: (batch: ReadonlyArray<{ tokens: Int32Array; mask: Uint8Array }>) =>
          Effect.sync(() => {
            batches.push(batch);
          }),
        step: () => Effect.succeed({}),
        logprobs: (batch: ReadonlyArray<{ tokens: Int32Array }>) =>
          Effect.succeed(batch.map((e) => new Float32Array(e.tokens.length))),
      } as unknown as LearnerShape;
      const config = {
        warmStart: { steps: 1, batchSize: 1, learningRate: 1e-3, checkpointEvery: 100 },
        environment: { options: {} },
      } as unknown as TrainConfig;

      await Effect.runPromise(
        warmStart(config, plugin, [task], new Random(1), {
          from: 0,
          checkpoint: () => Effect.void,
          record: () => Effect.void,
        }).pipe(
          Effect.provide(
            Layer.mergeAll(
              Layer.succeed(Policy, policy),
              Layer.succeed(Learner, learner),
              Layer.succeed(Environment, env),
            ),
          ),
        ),
      );
      expect(batches.length).toBe(1);
      const { tokens, mask } = batches[0]![0]!;
      // The last token is the turn end, trained on (mask 1).
      expect(tokens[tokens.length - 1]).toBe(imEnd);
      expect(mask[mask.length - 1]).toBe(1);
      expect(policy.detokenize(tokens)).toBe(
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWho wrote Hamlet?<|im_end|>\n<|im_start|>assistant\n" +
          "<tool> search: Hamlet </tool><|im_end|>\n<|im_start|>user\nShakespeare wrote it.<|im_end|>\n<|im_start|>assistant\n" +
          "<answer> Shakespeare </answer><|im_end|>",
      );
    } finally {
      await policy.dispose();
    }
  });
});
