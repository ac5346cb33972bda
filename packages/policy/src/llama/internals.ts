/**
 * Every use of node-llama-cpp's private fields, in one module. They are internal but stable within
 * the pinned 3.22.1 (package.json pins it exactly); a version bump must re-check this file alone.
 * - `LlamaContext._ctx`: the native context whose batched API the engine drives (engine.ts);
 * - `Llama._bindings.AddonSampler`, `LlamaModel._model`, `LlamaContextSequence._resolveSamplerConfig`:
 *   a native sampler configured exactly like node-llama-cpp's own;
 * - `LlamaContextSequence._sequenceId`: the KV-cache sequence id of a sequence.
 */
import type { Llama, LlamaContext, LlamaContextSequence, LlamaModel } from "node-llama-cpp";
import type { NativeContext, NativeSampler } from "./engine.js";

export const nativeContextOf = (context: LlamaContext): NativeContext =>
  (context as unknown as { _ctx: NativeContext })._ctx;

export const sequenceIdOf = (seq: LlamaContextSequence): number =>
  (seq as unknown as { _sequenceId: number })._sequenceId;

/** A native sampler at temperature 1 with no truncation, seeded: the RL sampling distribution. */
export const newNativeSampler = (
  llama: Llama,
  model: LlamaModel,
  seq: LlamaContextSequence,
  seed: number,
): NativeSampler => {
  const bindings = (llama as unknown as { _bindings: { AddonSampler: new (m: unknown) => NativeSampler } })
    ._bindings;
  const sampler = new bindings.AddonSampler((model as unknown as { _model: unknown })._model);
  const resolve = (seq as unknown as { _resolveSamplerConfig: (o: object) => unknown })._resolveSamplerConfig;
  sampler.applyConfig(resolve.call(seq, { temperature: 1, topK: 0, topP: 1, minP: 0, seed }));
  return sampler;
};
