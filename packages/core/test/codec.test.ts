import { describe, expect, it } from "vitest";
import {
  decodeTrajectory,
  encodeTrajectory,
  ParseError,
  packr,
  TrajectoryValidationError,
} from "../src/index.js";
import { sampleTrajectory } from "./fixtures.js";

describe("msgpack trajectory codec", () => {
  it("round-trips a trajectory with typed arrays kept as typed arrays", () => {
    const t = sampleTrajectory();
    const back = decodeTrajectory(encodeTrajectory(t));
    expect(back.tokens).toBeInstanceOf(Int32Array);
    expect(back.mask).toBeInstanceOf(Uint8Array);
    expect(back.segments).toBeInstanceOf(Int32Array);
    expect(back.samplerLogprobs).toBeInstanceOf(Float32Array);
    expect(Array.from(back.tokens)).toEqual(Array.from(t.tokens));
    expect(Array.from(back.segments)).toEqual(Array.from(t.segments));
    // NaN positions survive bit for bit.
    expect(
      new Uint32Array(
        back.samplerLogprobs.buffer,
        back.samplerLogprobs.byteOffset,
        back.samplerLogprobs.length,
      ),
    ).toEqual(
      new Uint32Array(t.samplerLogprobs.buffer, t.samplerLogprobs.byteOffset, t.samplerLogprobs.length),
    );
    expect(back.turns).toEqual(t.turns);
    expect(back.rewardParts).toEqual(t.rewardParts);
    expect(back.finishReason).toBe("answer");
  });

  it("rejects bytes that are not a trajectory", () => {
    expect(() => decodeTrajectory(new Uint8Array([0xc1]))).toThrow(ParseError);
    expect(() => decodeTrajectory(packr.pack({ hello: 1 }))).toThrow(/not a trajectory/);
  });

  it("validates what it decodes", () => {
    const broken = { ...sampleTrajectory(), mask: new Uint8Array(2) };
    expect(() => decodeTrajectory(packr.pack(broken))).toThrow(TrajectoryValidationError);
  });
});
