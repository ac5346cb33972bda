import { TrajectoryValidationError } from "./errors.js";
import { segmentsFromMask } from "./segments.js";
import type { FinishReason, Trajectory } from "./trajectory.js";

const finishReasons: ReadonlySet<FinishReason> = new Set<FinishReason>([
  "answer",
  "done",
  "operator-budget",
  "max-turns",
  "max-tokens",
  "context-overflow",
  "error",
  "cancelled",
]);

const fail = (field: string, message: string, position?: number): never => {
  throw new TrajectoryValidationError({
    field,
    position,
    message:
      position === undefined
        ? `trajectory.${field}: ${message}`
        : `trajectory.${field}[${position}]: ${message}`,
  });
};

/**
 * Checks every invariant of a {@link Trajectory} and throws a {@link TrajectoryValidationError}
 * naming the field (and position) of the first violation:
 * equal lengths of the per-token arrays; prompt tokens unmasked; mask values 0/1;
 * segments exactly `segmentsFromMask(mask)`; sampler logprobs finite and ≤ 0 where mask is 1 and
 * NaN where it is 0; non-negative token ids; a finite reward; a known finish reason.
 */
export const validateTrajectory = (trajectory: Trajectory): void => {
  const { tokens, mask, segments, samplerLogprobs, promptLength } = trajectory;
  if (!(tokens instanceof Int32Array)) fail("tokens", "expected an Int32Array");
  if (!(mask instanceof Uint8Array)) fail("mask", "expected a Uint8Array");
  if (!(segments instanceof Int32Array)) fail("segments", "expected an Int32Array");
  if (!(samplerLogprobs instanceof Float32Array)) fail("samplerLogprobs", "expected a Float32Array");
  const n = tokens.length;
  if (mask.length !== n) fail("mask", `length ${mask.length} differs from tokens.length ${n}`);
  if (segments.length !== n) fail("segments", `length ${segments.length} differs from tokens.length ${n}`);
  if (samplerLogprobs.length !== n)
    fail("samplerLogprobs", `length ${samplerLogprobs.length} differs from tokens.length ${n}`);
  if (!Number.isInteger(promptLength) || promptLength < 0 || promptLength > n)
    fail("promptLength", `${promptLength} is not an integer in [0, ${n}]`);
  for (let t = 0; t < n; t++) {
    if (tokens[t]! < 0) fail("tokens", `negative token id ${tokens[t]}`, t);
    const m = mask[t]!;
    if (m !== 0 && m !== 1) fail("mask", `value ${m} is not 0 or 1`, t);
    if (t < promptLength && m !== 0) fail("mask", "prompt token marked as sampled (mask 1)", t);
    const lp = samplerLogprobs[t]!;
    if (m === 1 && !(Number.isFinite(lp) && lp <= 0))
      fail("samplerLogprobs", `sampled token has log-probability ${lp}, expected a finite value ≤ 0`, t);
    if (m === 0 && !Number.isNaN(lp)) fail("samplerLogprobs", `expected NaN where mask is 0, got ${lp}`, t);
  }
  const expected = segmentsFromMask(mask);
  for (let t = 0; t < n; t++)
    if (segments[t] !== expected[t])
      fail("segments", `segment id ${segments[t]} but the mask implies ${expected[t]}`, t);
  if (!Number.isFinite(trajectory.reward)) fail("reward", `${trajectory.reward} is not a finite number`);
  for (const [name, value] of Object.entries(trajectory.rewardParts))
    if (typeof value !== "number" || Number.isNaN(value))
      fail(`rewardParts.${name}`, `${value} is not a number`);
  if (!finishReasons.has(trajectory.finishReason))
    fail("finishReason", `unknown finish reason ${JSON.stringify(trajectory.finishReason)}`);
  if (typeof trajectory.groupId !== "string") fail("groupId", "expected a string");
  if (typeof trajectory.taskId !== "string") fail("taskId", "expected a string");
};
