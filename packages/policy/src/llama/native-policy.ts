/**
 * The LlamaCppPolicy on the native engine (src/native/sampler.ts): llama.cpp runs the decode loop
 * in C++ for every live sequence, so a step costs one native call per chunk of steps instead of
 * one per sequence per token. node-llama-cpp loads only the vocabulary (tokenizer, end-of-turn
 * tokens, the chat template); the weights live in the engine. A LoRA reload swaps the adapter on
 * the engine's context without reloading the base; a full reload opens a new engine.
 */
import {
  type ContextOverflowError,
  type Generation,
  ModelLoadError,
  type PolicyError,
  type PolicySequence,
  type SamplingOptions,
  type WeightsSource,
} from "@workflow-r1/core";
import { Effect, type Scope, Semaphore } from "effect";
import type { Llama, LlamaModel, Token } from "node-llama-cpp";
import type { AddonFlavor } from "../native/addon.js";
import { createNativeSampler, type NativeSampler, type NativeSamplerSequence } from "../native/sampler.js";
import { describeModel, type Loaded } from "./loading.js";
import {
  checkScore,
  checkTokens,
  type DisposablePolicy,
  type LlamaCppPolicyConfig,
  loadLlamaModel,
  messageOf,
  openSequencesError,
  policyErrorOf,
  reloadFailure,
  textMethods,
} from "./options.js";

interface Current extends Pick<Loaded, "renderer" | "info" | "modelPath" | "extraStopTokens"> {
  readonly model: LlamaModel;
  readonly sampler: NativeSampler;
}

export const createNativeLlamaPolicy = async (
  config: LlamaCppPolicyConfig,
  llama: Llama,
  flavor: AddonFlavor,
): Promise<DisposablePolicy> => {
  const nSeq = config.sequences ?? 8;
  const perSeq = config.contextSize ?? 2048;
  // All layers on the GPU when node-llama-cpp runs CUDA and the GPU was not switched off.
  const gpuLayers = flavor === "cuda" && config.gpu !== false ? 9999 : 0;

  const open = async (path: string): Promise<Current> => {
    const { model, modelPath } = await loadLlamaModel(llama, path, { vocabOnly: true });
    let sampler: NativeSampler;
    try {
      sampler = createNativeSampler({
        modelPath,
        flavor,
        sequences: nSeq,
        contextPerSequence: perSeq,
        threads: config.threads ?? llama.cpuMathCores,
        gpuLayers,
        batchSize: config.batchSize ?? Math.max(512, nSeq),
        ...(config.kvCacheType === undefined ? {} : { kvCacheType: config.kvCacheType }),
        flashAttention: config.flashAttention ?? false,
      });
    } catch (e) {
      await model.dispose();
      throw new ModelLoadError({
        message: `cannot load ${path} into llama.cpp: ${messageOf(e)}`,
        path,
        cause: e,
      });
    }
    return { model, sampler, ...describeModel(model, modelPath, perSeq) };
  };

  let current = await open(config.modelPath);
  if (config.lora) {
    const lora = config.lora;
    await current.sampler.setLora(lora).catch(async (e) => {
      await current.sampler.dispose();
      await current.model.dispose();
      throw new ModelLoadError({
        message: `cannot apply the LoRA adapter ${lora.path}: ${messageOf(e)}`,
        path: lora.path,
        cause: e,
      });
    });
  }
  // Counters of engines replaced by full reloads, so the totals span the policy's life.
  const retired = { decodes: 0, tokens: 0 };
  let openSequences = 0;
  const slots = Semaphore.makeUnsafe(nSeq);
  const holdSlot = Effect.acquireRelease(Semaphore.take(slots, 1), () => Semaphore.release(slots, 1));

  const openSequence = (
    prompt: Int32Array,
  ): Effect.Effect<PolicySequence, PolicyError | ContextOverflowError, Scope.Scope> =>
    Effect.gen(function* () {
      yield* checkTokens(prompt, current.info, "prompt has", "prompt token");
      yield* holdSlot;
      const seq = yield* Effect.acquireRelease(
        Effect.try({
          try: () => current.sampler.openSequence(prompt),
          catch: policyErrorOf("open sequence"),
        }),
        // Waits for a generation in flight to stop (interruption cancels it at the next step).
        (s) => Effect.promise(() => s.close()),
      );
      yield* Effect.acquireRelease(
        Effect.sync(() => openSequences++),
        () => Effect.sync(() => openSequences--),
      );
      return {
        tokens: seq.tokens,
        generate: (append, options) =>
          Effect.tryPromise({
            try: (signal) => generateStoppingAtTurnEnd(current, seq, append, options, signal),
            catch: policyErrorOf("generate"),
          }),
      } satisfies PolicySequence;
    });

  /**
   * The C++ loop stops at llama.cpp's end-of-generation tokens; a template turn end that is not one
   * (rare: `extraStopTokens`) stops it as a stop string of its text, reported as "eos" when the turn end
   * token itself was sampled.
   */
  const generateStoppingAtTurnEnd = async (
    owner: Current,
    seq: NativeSamplerSequence,
    append: Int32Array,
    options: SamplingOptions,
    signal: AbortSignal,
  ): Promise<Generation> => {
    if (owner.extraStopTokens.length === 0) return seq.generate(append, options, signal);
    const texts = owner.extraStopTokens.map((t) => owner.model.detokenize([t as Token], true));
    const asked = options.stop ?? [];
    const g = await seq.generate(append, { ...options, stop: [...asked, ...texts] }, signal);
    const last = g.tokens[g.tokens.length - 1];
    if (g.finishReason === "stop" && last !== undefined && owner.extraStopTokens.includes(last)) {
      const { stopString: _, ...rest } = g;
      return { ...rest, finishReason: "eos" };
    }
    return g;
  };

  const score = (tokens: Int32Array, from: number) =>
    Effect.scoped(
      Effect.gen(function* () {
        yield* checkScore(tokens, from, current.info);
        if (from === tokens.length) return new Float32Array(0);
        yield* holdSlot;
        return yield* Effect.tryPromise({
          try: () => current.sampler.score(tokens, from),
          catch: policyErrorOf("score"),
        });
      }),
    );

  const reload = (weights: WeightsSource): Effect.Effect<void, ModelLoadError> =>
    Effect.tryPromise({
      try: async () => {
        if (openSequences > 0) throw openSequencesError(openSequences);
        if (weights.kind === "lora" || weights.kind === "lora-bytes") {
          await current.sampler.setLora(weights);
          return;
        }
        const next = await open(weights.path);
        const old = current;
        current = next;
        retired.decodes += old.sampler.decodeCalls();
        retired.tokens += old.sampler.decodedTokens();
        await old.sampler.dispose();
        await old.model.dispose();
      },
      catch: reloadFailure(weights),
    });

  return {
    engine: "native",
    info: () => current.info,
    ...textMethods(() => current),
    openSequence,
    score,
    reload,
    evaluatedTokens: () => retired.tokens + current.sampler.decodedTokens(),
    decodeCalls: () => retired.decodes + current.sampler.decodeCalls(),
    model: () => current.model,
    dispose: async () => {
      await current.sampler.dispose();
      await current.model.dispose();
    },
  };
};
