/**
 * The core `Policy` on llama.cpp. One context holds many sequences, and every sequence that waits
 * for a token is decoded in one `llama_decode` call (continuous batching: a sequence that finishes
 * frees its slot while the others go on). Two engines run that loop: the native one (C++ over
 * libllama, native-policy.ts; the default) and, below, node-llama-cpp's batched context API with one
 * sampling call per sequence per token (the fallback where the native addon is not built, e.g. Vulkan).
 *
 * Log-probabilities: every sampled token comes with log p(token) under the model at temperature 1
 * without truncation (the quantity the learner computes), whatever sampling options were used.
 * With temperature 1 and no top-k/top-p truncation (the RL default) that is log(confidence) of the
 * sampler; otherwise the raw logits are read and the token is sampled here.
 */
import { copyFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type ContextOverflowError,
  ModelLoadError,
  Policy,
  PolicyError,
  type PolicySequence,
  type WeightsSource,
} from "@workflow-r1/core";
import { Effect, Layer, type Scope, Semaphore } from "effect";
import {
  getLlama,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaLogLevel,
  type LlamaModel,
} from "node-llama-cpp";
import { type AddonFlavor, addonAvailable, addonFile } from "../native/addon.js";
import type { NativeLoraAdapter } from "../native/sampler.js";
import type { NativeSampler } from "./engine.js";
import { newNativeSampler, sequenceIdOf } from "./internals.js";
import { describeLoaded, type Loaded, partsOf } from "./loading.js";
import { createNativeLlamaPolicy } from "./native-policy.js";
import {
  checkScore,
  checkTokens,
  type DisposablePolicy,
  type LlamaCppPolicyConfig,
  type LlamaCppPolicyShape,
  loadLlamaModel,
  messageOf,
  openSequencesError,
  policyErrorOf,
  reloadFailure,
  textMethods,
} from "./options.js";
import { createSequence } from "./sequence.js";

export type { KvCacheType, LlamaCppPolicyConfig, LlamaCppPolicyShape } from "./options.js";

/** The native addon's flavour for the libraries node-llama-cpp loaded (none for Vulkan / Metal). */
const flavorOf = (llama: Llama): AddonFlavor | undefined =>
  llama.gpu === false ? "cpu" : llama.gpu === "cuda" ? "cuda" : undefined;

/** Create the policy; `dispose` frees the engine and model. Prefer {@link LlamaCppPolicy.layer}. */
export const createLlamaCppPolicy = async (config: LlamaCppPolicyConfig): Promise<DisposablePolicy> => {
  const llama =
    config.llama ??
    (await getLlama({
      gpu: config.gpu ?? "auto",
      build: "never",
      logLevel: (config.logLevel ?? "error") as LlamaLogLevel,
    }).catch((e) => {
      throw new ModelLoadError({
        message: `cannot start llama.cpp: ${messageOf(e)}`,
        path: config.modelPath,
        cause: e,
      });
    }));
  const flavor = flavorOf(llama);
  if (config.engine !== "node-llama-cpp") {
    if (flavor !== undefined && addonAvailable(flavor)) return createNativeLlamaPolicy(config, llama, flavor);
    if (config.engine === "native")
      throw new ModelLoadError({
        message:
          flavor === undefined
            ? `the native engine runs on node-llama-cpp's CPU or CUDA libraries, not ${llama.gpu}: use engine "node-llama-cpp" or gpu "cuda" / false`
            : `the native engine's addon ${addonFile(flavor)} is not built: run \`npm run build:native -w @workflow-r1/policy\``,
        path: config.modelPath,
      });
  }
  return createNodeLlamaCppPolicy(config, llama);
};

/** The policy on node-llama-cpp's batched context API (engine "node-llama-cpp"). */
const createNodeLlamaCppPolicy = async (
  config: LlamaCppPolicyConfig,
  llama: Llama,
): Promise<DisposablePolicy> => {
  const nSeq = config.sequences ?? 8;
  const perSeq = config.contextSize ?? 2048;
  let loraDir: string | undefined;
  let loraCounter = 0;

  const loadModel = (path: string) => loadLlamaModel(llama, path);

  /**
   * Copy an adapter to a fresh path: node-llama-cpp caches adapters by path, the learner rewrites one
   * path. node-llama-cpp loads adapters only from files, so in-memory bytes are written out here.
   */
  const freshLoraPath = async (adapter: NativeLoraAdapter) => {
    loraDir ??= await mkdtemp(join(tmpdir(), "wr1-lora-"));
    const target = join(loraDir, `adapter-${loraCounter++}.gguf`);
    if ("bytes" in adapter) await writeFile(target, adapter.bytes);
    else await copyFile(adapter.path, target);
    return target;
  };

  // The adapter copy the live context was made from; removed once a reload replaces it (llama.cpp
  // reads adapters into memory), so a long LoRA run leaves one copy behind, not one per step.
  let liveLoraFile: string | undefined;
  const replaceLoraFile = async (next: string | undefined) => {
    if (liveLoraFile !== undefined && liveLoraFile !== next) await rm(liveLoraFile, { force: true });
    liveLoraFile = next;
  };

  const createContext = async (model: LlamaModel, lora?: NativeLoraAdapter) => {
    const filePath = lora ? await freshLoraPath(lora) : undefined;
    const adapters = filePath ? [{ filePath, scale: lora?.scale ?? 1 }] : [];
    const context = await model
      .createContext({
        contextSize: perSeq,
        sequences: nSeq,
        batchSize: config.batchSize ?? Math.max(512, nSeq),
        ...(config.threads === undefined ? {} : { threads: config.threads }),
        flashAttention: config.flashAttention ?? false,
        // Passed only when asked: setting even the default F16 explicitly measured ~1.8× slower decodes.
        ...(config.kvCacheType === undefined
          ? {}
          : {
              experimentalKvCacheKeyType: config.kvCacheType,
              experimentalKvCacheValueType: config.kvCacheType,
            }),
        ...(adapters.length > 0 ? { lora: { adapters } } : {}),
      })
      .catch(async (e) => {
        if (filePath !== undefined) await rm(filePath, { force: true });
        throw e;
      });
    return { context, loraFile: filePath };
  };

  const stats = { decodes: 0, decodedTokens: 0 };
  const contextParts = (context: LlamaContext) => partsOf(context, nSeq, stats);
  const describe = (model: LlamaModel, context: LlamaContext, modelPath: string): Loaded =>
    describeLoaded(model, context, modelPath, contextParts(context));

  const first = await loadModel(config.modelPath);
  let loaded: Loaded;
  try {
    const created = await createContext(first.model, config.lora);
    liveLoraFile = created.loraFile;
    loaded = describe(first.model, created.context, first.modelPath);
  } catch (e) {
    await first.model.dispose();
    throw new ModelLoadError({
      message: `cannot create a context for ${config.modelPath}: ${messageOf(e)}`,
      path: config.modelPath,
      cause: e,
    });
  }
  let open = 0;
  const slots = Semaphore.makeUnsafe(nSeq);

  const policyError = policyErrorOf;

  /** A free sequence of the context, for the life of the current scope (waits while all are in use). */
  const acquireSequence = (what: string) =>
    Effect.gen(function* () {
      yield* Effect.acquireRelease(Semaphore.take(slots, 1), () => Semaphore.release(slots, 1));
      const owner = loaded;
      return yield* Effect.acquireRelease(
        Effect.sync(() => owner.free.pop()).pipe(
          Effect.flatMap((s) =>
            s === undefined
              ? Effect.fail(new PolicyError({ message: `${what}: no free sequence` }))
              : Effect.succeed(s),
          ),
        ),
        (s) =>
          Effect.sync(() => {
            // Free the sequence's KV cells (the engine bypasses node-llama-cpp's own bookkeeping).
            owner.native.disposeSequence(sequenceId(s));
            owner.free.push(s);
          }),
      );
    });

  /** A native sampler configured like node-llama-cpp's own (temperature 1, no truncation unless asked). */
  const makeSampler = (seq: LlamaContextSequence, seed: number): NativeSampler =>
    newNativeSampler(llama, loaded.model, seq, seed);
  const sequenceId = sequenceIdOf;

  const sequenceFor = (seq: LlamaContextSequence, prompt: Int32Array): PolicySequence =>
    createSequence({ current: () => loaded, makeSampler, policyError }, seq, prompt);

  const limits = () => ({
    contextSize: loaded.context.contextSize,
    vocabularySize: loaded.info.vocabularySize,
  });

  const openSequence = (
    prompt: Int32Array,
  ): Effect.Effect<PolicySequence, PolicyError | ContextOverflowError, Scope.Scope> =>
    Effect.gen(function* () {
      yield* checkTokens(prompt, limits(), "prompt has", "prompt token");
      const seq = yield* acquireSequence("open sequence");
      yield* Effect.acquireRelease(
        Effect.sync(() => open++),
        () => Effect.sync(() => open--),
      );
      return sequenceFor(seq, prompt);
    });

  const score = (tokens: Int32Array, from: number) =>
    Effect.scoped(
      Effect.gen(function* () {
        yield* checkScore(tokens, from, limits());
        if (from === tokens.length) return new Float32Array(0);
        const seq = yield* acquireSequence("score");
        return yield* Effect.tryPromise({
          try: async () => {
            const { engine, native } = loaded;
            const sampler = makeSampler(seq, 0);
            try {
              const wanted = Array.from({ length: tokens.length - from }, (_, k) => from - 1 + k);
              // includeTop: 1 carries the row's max logit, the reference point of totalLogitWeight.
              const rows = await engine.decode(
                sequenceId(seq),
                0,
                tokens.subarray(0, tokens.length - 1),
                wanted,
                (li, t) =>
                  native.sampleToken(
                    li,
                    sampler,
                    false,
                    false,
                    [[tokens[t + 1]], false, false, false, 1],
                    true,
                  ),
              );
              const out = new Float32Array(rows.length);
              rows.forEach((r, k) => {
                const flat = r[3];
                const total = r[4];
                if (flat === undefined || total === undefined)
                  throw new PolicyError({ message: `no logits at position ${from - 1 + k}` });
                let max = Number.NEGATIVE_INFINITY;
                let target = Number.NEGATIVE_INFINITY;
                for (let i = 0; i + 1 < flat.length; i += 2) {
                  max = Math.max(max, flat[i + 1]);
                  if (flat[i] === tokens[from + k]) target = flat[i + 1];
                }
                out[k] = target - max - Math.log(total);
              });
              return out;
            } finally {
              sampler.dispose();
            }
          },
          catch: policyError("score"),
        });
      }),
    );

  const reload = (weights: WeightsSource): Effect.Effect<void, ModelLoadError> =>
    Effect.tryPromise({
      try: async () => {
        if (open > 0) throw openSequencesError(open);
        if (weights.kind === "lora" || weights.kind === "lora-bytes") {
          const next = await createContext(loaded.model, weights);
          await loaded.context.dispose();
          loaded = { ...loaded, context: next.context, ...contextParts(next.context) };
          await replaceLoraFile(next.loraFile);
          return;
        }
        const { model, modelPath } = await loadModel(weights.path);
        let context: LlamaContext;
        try {
          context = (await createContext(model)).context;
        } catch (e) {
          await model.dispose();
          throw e;
        }
        const old = loaded;
        loaded = describe(model, context, modelPath);
        await old.context.dispose();
        await old.model.dispose();
        await replaceLoraFile(undefined);
      },
      catch: reloadFailure(weights),
    });

  return {
    engine: "node-llama-cpp",
    info: () => ({ ...loaded.info, contextSize: loaded.context.contextSize }),
    ...textMethods(() => loaded),
    openSequence,
    score,
    reload,
    evaluatedTokens: () => stats.decodedTokens,
    decodeCalls: () => stats.decodes,
    model: () => loaded.model,
    dispose: async () => {
      await loaded.context.dispose();
      await loaded.model.dispose();
      if (loraDir) await rm(loraDir, { recursive: true, force: true });
    },
  };
};

/** The `Policy` layer over llama.cpp; the model and context are disposed when the layer's scope closes. */
export const LlamaCppPolicy = {
  layer: (config: LlamaCppPolicyConfig): Layer.Layer<Policy, ModelLoadError> =>
    Layer.effect(
      Policy,
      Effect.acquireRelease(
        Effect.tryPromise({
          try: () => createLlamaCppPolicy(config),
          catch: (e) =>
            e instanceof ModelLoadError
              ? e
              : new ModelLoadError({ message: messageOf(e), path: config.modelPath, cause: e }),
        }),
        (p) => Effect.promise(() => p.dispose()),
      ),
    ),
  make: (config: LlamaCppPolicyConfig): Effect.Effect<LlamaCppPolicyShape, ModelLoadError, Scope.Scope> =>
    Effect.acquireRelease(
      Effect.tryPromise({
        try: () => createLlamaCppPolicy(config),
        catch: (e) =>
          e instanceof ModelLoadError
            ? e
            : new ModelLoadError({ message: messageOf(e), path: config.modelPath, cause: e }),
      }),
      (p) => Effect.promise(() => p.dispose()),
    ),
};
