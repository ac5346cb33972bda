import { describe, expect, it } from "vitest";
import {
  type Trajectory,
  TrajectoryBuilder,
  TrajectoryValidationError,
  validateTrajectory,
} from "../src/index.js";
import { sampleTrajectory } from "./fixtures.js";

const expectInvalid = (t: Trajectory, field: string, position?: number) => {
  try {
    validateTrajectory(t);
  } catch (error) {
    expect(error).toBeInstanceOf(TrajectoryValidationError);
    const e = error as TrajectoryValidationError;
    expect(e.field).toBe(field);
    expect(e.position).toBe(position);
    expect(e.message).toContain(field);
    return;
  }
  expect.fail(`expected ${field} to be rejected`);
};

describe("TrajectoryBuilder", () => {
  it("keeps tokens, mask, logprobs and segments in lockstep", () => {
    const t = sampleTrajectory();
    expect(Array.from(t.tokens)).toEqual([1, 2, 3, 10, 11, 20, 21, 22, 12, 13, 14]);
    expect(Array.from(t.mask)).toEqual([0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1]);
    expect(Array.from(t.segments)).toEqual([-1, -1, -1, 0, 0, -1, -1, -1, 1, 1, 1]);
    expect(t.samplerLogprobs[3]).toBeCloseTo(-0.5);
    expect(Number.isNaN(t.samplerLogprobs[5])).toBe(true);
    expect(t.promptLength).toBe(3);
    validateTrajectory(t);
  });

  it("grows past its initial capacity", () => {
    const b = new TrajectoryBuilder([0]);
    for (let i = 0; i < 100; i++) b.appendSampled([i, i + 1], [-1, -1]);
    expect(b.size).toBe(201);
    expect(b.sampledTokens).toBe(200);
    const t = b.build({
      reward: 0,
      rewardParts: {},
      groupId: "g",
      taskId: "t",
      turns: [],
      finishReason: "max-tokens",
    });
    expect(t.tokens[200]).toBe(100);
    validateTrajectory(t);
  });

  it("rejects logprobs of the wrong length", () => {
    expect(() => new TrajectoryBuilder([1]).appendSampled([1, 2], [-1])).toThrow(/2 tokens but 1 logprobs/);
  });
});

describe("validateTrajectory", () => {
  it("accepts a valid trajectory", () => expect(() => validateTrajectory(sampleTrajectory())).not.toThrow());

  it("rejects length mismatches", () => {
    expectInvalid({ ...sampleTrajectory(), mask: new Uint8Array(3) }, "mask");
    expectInvalid({ ...sampleTrajectory(), samplerLogprobs: new Float32Array(2) }, "samplerLogprobs");
  });

  it("rejects a sampled prompt token", () => {
    const t = sampleTrajectory();
    const mask = t.mask.slice();
    mask[1] = 1;
    expectInvalid({ ...t, mask }, "mask", 1);
  });

  it("rejects segments that disagree with the mask", () => {
    const t = sampleTrajectory();
    const segments = t.segments.slice();
    segments[9] = 0;
    expectInvalid({ ...t, segments }, "segments", 9);
  });

  it("rejects NaN or positive logprobs on sampled tokens and numbers on observation tokens", () => {
    const t = sampleTrajectory();
    const a = t.samplerLogprobs.slice();
    a[4] = Number.NaN;
    expectInvalid({ ...t, samplerLogprobs: a }, "samplerLogprobs", 4);
    const b = t.samplerLogprobs.slice();
    b[3] = 0.5;
    expectInvalid({ ...t, samplerLogprobs: b }, "samplerLogprobs", 3);
    const c = t.samplerLogprobs.slice();
    c[6] = -1;
    expectInvalid({ ...t, samplerLogprobs: c }, "samplerLogprobs", 6);
  });

  it("rejects bad mask values, negative tokens, bad rewards and unknown finish reasons", () => {
    const t = sampleTrajectory();
    const mask = t.mask.slice();
    mask[6] = 2;
    expectInvalid({ ...t, mask }, "mask", 6);
    const tokens = t.tokens.slice();
    tokens[0] = -3;
    expectInvalid({ ...t, tokens }, "tokens", 0);
    expectInvalid({ ...t, reward: Number.NaN }, "reward");
    expectInvalid({ ...t, promptLength: 99 }, "promptLength");
    expectInvalid({ ...t, finishReason: "bored" as never }, "finishReason");
    expectInvalid({ ...t, tokens: [1, 2] as never }, "tokens");
  });
});
