/**
 * Msgpack encoding of trajectories. `moreTypes: true` keeps typed arrays as typed arrays (with
 * their exact bytes, so NaN logprobs survive), which the trajectory log and checkpoints rely on.
 */
import { Packr } from "msgpackr";
import { ParseError } from "./errors.js";
import type { Trajectory } from "./trajectory.js";
import { validateTrajectory } from "./validate.js";

/** The msgpackr instance every workflow-r1 file format uses. */
export const packr = new Packr({ moreTypes: true, useRecords: false, variableMapSize: true });

export const encodeTrajectory = (trajectory: Trajectory): Uint8Array => packr.pack(trajectory);

/** Decodes and validates one trajectory; throws a ParseError or TrajectoryValidationError. */
export const decodeTrajectory = (bytes: Uint8Array): Trajectory => {
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch (cause) {
    throw new ParseError({ message: `not a msgpack trajectory record: ${String(cause)}` });
  }
  if (typeof value !== "object" || value === null || !("tokens" in value))
    throw new ParseError({ message: "msgpack record is not a trajectory (no `tokens` field)" });
  const trajectory = value as Trajectory;
  validateTrajectory(trajectory);
  return trajectory;
};
