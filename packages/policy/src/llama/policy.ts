/**
 * The core `Policy` on llama.cpp through node-llama-cpp: one context holds many sequences, and the
 * context's batcher decodes every sequence that waits for a token in one `llama_decode` call
 * (continuous batching: a sequence that finishes frees its slot while the others go on).
 *
 * Log-probabilities: every sampled token comes with log p(token) under the model at temperature 1
 * without truncation (the quantity the learner computes), whatever sampling options were used.
 * With temperature 1 and no top-k/top-p truncation (the RL default) that is log(confidence) of the
 * sampler; otherwise the raw logits are read and the token is sampled here.
 */
import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type ChatMessage,
  ContextOverflowError,
  type Generation,
  ModelLoadError,
  Policy,
  PolicyError,
  type PolicyInfo,
  type PolicySequence,
  type PolicyShape,
  type SampleFinishReason,
  type SamplingOptions,
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
  resolveModelFile,
  type Token,
} from "node-llama-cpp";
import { createRng } from "../gguf/tiny.js";
import { ChatRenderer } from "./chat.js";
import { BatchEngine, type NativeContext, type NativeSampler } from "./engine.js";
import { nativeContextOf, newNativeSampler, sequenceIdOf } from "./internals.js";

export type KvCacheType = "F32" | "F16" | "Q8_0" | "Q4_0";

export interface LlamaCppPolicyConfig {
  /** A GGUF path, or an `hf:<user>/<repo>:<quant>` URI (downloaded once into node-llama-cpp's cache; needs network). */
  readonly modelPath: string;
  /** `false` = CPU only. Default `"auto"`. */
  readonly gpu?: "auto" | "cuda" | "vulkan" | false;
  /** Tokens per sequence. Default 2048. */
  readonly contextSize?: number;
  /** Sequences that can be live at once (parallel rollouts). Default 8. */
  readonly sequences?: number;
  /** Tokens per `llama_decode` call. Default max(512, sequences). */
  readonly batchSize?: number;
  /** CPU threads. Default: all cores node-llama-cpp detects. */
  readonly threads?: number;
  /**
   * KV cache type. Default: llama.cpp's own (F16: half the memory, log-probs shift by ~3e-3);
   * `"F32"` makes sampler log-probs agree with an F32 learner to ~1e-6 at twice the cache memory.
   */
  readonly kvCacheType?: KvCacheType;
  /** Flash attention. Default false (exact agreement with the learner's attention). */
  readonly flashAttention?: boolean;
  /** A LoRA adapter applied from the start. */
  readonly lora?: { readonly path: string; readonly scale?: number };
  /** Share a Llama instance (e.g. across tests). */
  readonly llama?: Llama;
  /** node-llama-cpp log level. Default `"error"`. */
  readonly logLevel?: "error" | "warn" | "info" | "debug";
}

/** The policy plus what tests and benchmarks need to look inside. */
export interface LlamaCppPolicyShape extends PolicyShape {
  /** Tokens node-llama-cpp has decoded so far (input tokens), to check that prefixes are reused. */
  readonly evaluatedTokens: () => number;
  /** `llama_decode` calls so far: concurrent sequences share one call per step. */
  readonly decodeCalls: () => number;
  readonly model: () => LlamaModel;
  readonly context: () => LlamaContext;
}

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

const isTruncating = (o: SamplingOptions, vocab: number) =>
  (o.topK !== undefined && o.topK > 0 && o.topK < vocab) || (o.topP !== undefined && o.topP < 1);

/** Sample from raw logits with temperature / top-k / top-p; returns the token and its temperature-1 log-prob. */
const sampleFromLogits = (
  logits: Map<number, number>,
  o: SamplingOptions,
  u: number,
): { token: number; logprob: number } => {
  const entries = [...logits.entries()].sort((a, b) => b[1] - a[1]);
  const max = entries[0][1];
  let z1 = 0;
  for (const [, l] of entries) z1 += Math.exp(l - max);
  const logZ = max + Math.log(z1);
  const t = o.temperature ?? 1;
  let chosen: number;
  if (t <= 0) chosen = entries[0][0];
  else {
    let cand = entries;
    if (o.topK !== undefined && o.topK > 0) cand = cand.slice(0, o.topK);
    const w = cand.map(([, l]) => Math.exp((l - max) / t));
    let total = w.reduce((a, b) => a + b, 0);
    if (o.topP !== undefined && o.topP < 1) {
      let acc = 0;
      let keep = 0;
      while (keep < w.length) {
        acc += w[keep] / total;
        keep++;
        if (acc >= o.topP) break;
      }
      cand = cand.slice(0, keep);
      w.length = keep;
      total = w.reduce((a, b) => a + b, 0);
    }
    let r = u * total;
    let i = 0;
    while (i < w.length - 1 && r >= w[i]) {
      r -= w[i];
      i++;
    }
    chosen = cand[i][0];
  }
  return { token: chosen, logprob: (logits.get(chosen) ?? Number.NEGATIVE_INFINITY) - logZ };
};

interface Loaded {
  model: LlamaModel;
  context: LlamaContext;
  /** Sequences of the context not in use (node-llama-cpp reclaims disposed ids lazily, so we reuse them). */
  free: LlamaContextSequence[];
  native: NativeContext;
  engine: BatchEngine;
  renderer: ChatRenderer;
  info: PolicyInfo;
  modelPath: string;
}

/** Create the policy; `dispose` frees the context and model. Prefer {@link LlamaCppPolicy.layer}. */
export const createLlamaCppPolicy = async (
  config: LlamaCppPolicyConfig,
): Promise<LlamaCppPolicyShape & { readonly dispose: () => Promise<void> }> => {
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
  const nSeq = config.sequences ?? 8;
  const perSeq = config.contextSize ?? 2048;
  let loraDir: string | undefined;
  let loraCounter = 0;

  const loadModel = async (path: string): Promise<{ model: LlamaModel; modelPath: string }> => {
    let modelPath = path;
    try {
      if (path.startsWith("hf:")) modelPath = await resolveModelFile(path);
      const model = await llama.loadModel({ modelPath });
      return { model, modelPath };
    } catch (e) {
      throw new ModelLoadError({ message: `cannot load model ${path}: ${messageOf(e)}`, path, cause: e });
    }
  };

  /** Copy an adapter to a fresh path: node-llama-cpp caches adapters by path, the learner rewrites one path. */
  const freshLoraPath = async (path: string) => {
    loraDir ??= await mkdtemp(join(tmpdir(), "wr1-lora-"));
    const target = join(loraDir, `adapter-${loraCounter++}.gguf`);
    await copyFile(path, target);
    return target;
  };

  const createContext = async (model: LlamaModel, lora?: { path: string; scale?: number }) => {
    const adapters = lora ? [{ filePath: await freshLoraPath(lora.path), scale: lora.scale ?? 1 }] : [];
    return model.createContext({
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
    });
  };

  const stats = { decodes: 0, decodedTokens: 0 };
  const contextParts = (context: LlamaContext) => {
    const native = nativeContextOf(context);
    return {
      free: Array.from({ length: nSeq }, () => context.getSequence()),
      native,
      engine: new BatchEngine(native, context.batchSize, stats),
    };
  };

  const describe = (model: LlamaModel, context: LlamaContext, modelPath: string): Loaded => {
    const eog = new Set<number>();
    for (const t of [model.tokens.eos, model.tokens.eot]) if (t !== null) eog.add(t);
    const meta = model.fileInfo.metadata as { tokenizer?: { ggml?: { tokens?: ReadonlyArray<string> } } };
    const arch = model.fileInfo.architectureMetadata as { vocab_size?: number };
    const vocabSize = arch?.vocab_size ?? meta.tokenizer?.ggml?.tokens?.length ?? 0;
    for (let t = 0; t < vocabSize; t++) if (model.isEogToken(t as Token)) eog.add(t);
    const endOfTurnTokens = [...eog].sort((a, b) => a - b);
    const template = model.fileInfo.metadata?.tokenizer?.chat_template;
    const eotToken = model.tokens.eot ?? model.tokens.eos;
    const renderer = new ChatRenderer(typeof template === "string" ? template : undefined, {
      tokenize: (text, special) => model.tokenize(text, special) as unknown as number[],
      endOfTurnTokens,
      endOfTurnText: eotToken === null ? undefined : model.detokenize([eotToken as Token], true),
      bosText: model.tokens.bosString ?? undefined,
      eosText: model.tokens.eosString ?? undefined,
    });
    return {
      model,
      context,
      ...contextParts(context),
      renderer,
      modelPath,
      info: { modelPath, contextSize: context.contextSize, vocabularySize: vocabSize, endOfTurnTokens },
    };
  };

  const first = await loadModel(config.modelPath);
  let loaded: Loaded;
  try {
    loaded = describe(first.model, await createContext(first.model, config.lora), first.modelPath);
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

  const policyError = (what: string) => (e: unknown) =>
    e instanceof ContextOverflowError || e instanceof PolicyError
      ? e
      : new PolicyError({ message: `${what}: ${messageOf(e)}`, cause: e });

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

  const sequenceFor = (seq: LlamaContextSequence, prompt: Int32Array): PolicySequence => {
    // Tokens in the KV cache, and sampled tokens not yet fed back (the last token of each turn).
    const history: number[] = [];
    let pending: number[] = Array.from(prompt);
    let busy = false;
    const vocab = loaded.info.vocabularySize;
    const id = sequenceId(seq);

    const run = async (append: Int32Array, o: SamplingOptions): Promise<Generation> => {
      if (busy)
        throw new PolicyError({
          message: "generate called again on a sequence before the previous call finished",
        });
      busy = true;
      const { engine, native } = loaded;
      const seed = o.seed ?? Math.floor(Math.random() * 2 ** 31);
      const fast = (o.temperature ?? 1) === 1 && !isTruncating(o, vocab);
      const sampler = makeSampler(seq, seed);
      engine.enter();
      try {
        const input = [...pending, ...append];
        const ctxSize = seq.contextSize;
        if (history.length + input.length > ctxSize)
          throw new ContextOverflowError({
            message: `sequence needs ${history.length + input.length} tokens (${history.length} cached + ${input.length} new), the context holds ${ctxSize} per sequence`,
            needed: history.length + input.length,
            contextSize: ctxSize,
          });
        if (input.length === 0)
          throw new PolicyError({ message: "nothing to evaluate: empty prompt and nothing appended" });
        for (const t of append)
          if (t < 0 || t >= vocab)
            throw new PolicyError({ message: `appended token ${t} is outside the vocabulary (${vocab})` });
        const tokens: number[] = [];
        const logprobs: number[] = [];
        const stops = o.stop ?? [];
        const longestStop = stops.reduce((m, s) => Math.max(m, s.length), 0);
        const rng = createRng(seed);
        let finishReason: SampleFinishReason = "length";
        let stopString: string | undefined;
        let feed = input;
        while (tokens.length < o.maxTokens) {
          if (history.length + feed.length > ctxSize) {
            finishReason = "context";
            break;
          }
          const [r] = await engine.decode(id, history.length, feed, [feed.length - 1], (li) =>
            fast
              ? native.sampleToken(li, sampler, false, true)
              : native.sampleToken(li, sampler, false, false, true),
          );
          history.push(...feed);
          feed = [];
          let token: number;
          let logprob: number;
          if (fast) {
            if (r[0] < 0 || r[2] === undefined)
              throw new PolicyError({ message: "llama.cpp returned no token" });
            token = r[0];
            logprob = Math.log(r[2]);
          } else {
            const flat = r[3];
            if (flat === undefined) throw new PolicyError({ message: "llama.cpp returned no logits" });
            const logits = new Map<number, number>();
            for (let i = 0; i + 1 < flat.length; i += 2) logits.set(flat[i], flat[i + 1]);
            ({ token, logprob } = sampleFromLogits(logits, o, rng.next()));
          }
          tokens.push(token);
          logprobs.push(logprob);
          feed = [token];
          if (loaded.model.isEogToken(token as Token)) {
            finishReason = "eos";
            break;
          }
          if (longestStop > 0) {
            // A stop string spans at most `longestStop` tokens (each token is ≥ 1 byte).
            const tail = loaded.model.detokenize(tokens.slice(-longestStop - 1) as Token[], true);
            const hit = stops.find((s) => tail.includes(s));
            if (hit !== undefined) {
              finishReason = "stop";
              stopString = hit;
              break;
            }
          }
        }
        pending = feed;
        return {
          tokens: Int32Array.from(tokens),
          logprobs: Float32Array.from(logprobs),
          finishReason,
          ...(stopString === undefined ? {} : { stopString }),
        };
      } finally {
        engine.leave();
        sampler.dispose();
        busy = false;
      }
    };
    return {
      tokens: () => Int32Array.from([...history, ...pending]),
      generate: (append, options) =>
        Effect.tryPromise({ try: () => run(append, options), catch: policyError("generate") }),
    };
  };

  const openSequence = (
    prompt: Int32Array,
  ): Effect.Effect<PolicySequence, PolicyError | ContextOverflowError, Scope.Scope> =>
    Effect.gen(function* () {
      const ctxSize = loaded.context.contextSize;
      if (prompt.length > ctxSize)
        return yield* new ContextOverflowError({
          message: `prompt has ${prompt.length} tokens, the context holds ${ctxSize} per sequence`,
          needed: prompt.length,
          contextSize: ctxSize,
        });
      for (const t of prompt)
        if (t < 0 || t >= loaded.info.vocabularySize)
          return yield* new PolicyError({
            message: `prompt token ${t} is outside the vocabulary (${loaded.info.vocabularySize})`,
          });
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
        if (from < 1 || from > tokens.length)
          return yield* new PolicyError({
            message: `score: from must be in [1, ${tokens.length}], got ${from}`,
          });
        const ctxSize = loaded.context.contextSize;
        if (tokens.length > ctxSize)
          return yield* new ContextOverflowError({
            message: `score needs ${tokens.length} tokens, the context holds ${ctxSize} per sequence`,
            needed: tokens.length,
            contextSize: ctxSize,
          });
        for (const t of tokens)
          if (t < 0 || t >= loaded.info.vocabularySize)
            return yield* new PolicyError({
              message: `score: token ${t} is outside the vocabulary (${loaded.info.vocabularySize})`,
            });
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
        if (open > 0)
          throw new Error(
            `${open} sequence(s) are still open; close them (end their scopes) before reloading`,
          );
        if (weights.kind === "lora") {
          const next = await createContext(loaded.model, { path: weights.path, scale: weights.scale });
          await loaded.context.dispose();
          loaded = { ...loaded, context: next, ...contextParts(next) };
          return;
        }
        const { model, modelPath } = await loadModel(weights.path);
        let context: LlamaContext;
        try {
          context = await createContext(model);
        } catch (e) {
          await model.dispose();
          throw e;
        }
        const old = loaded;
        loaded = describe(model, context, modelPath);
        await old.context.dispose();
        await old.model.dispose();
      },
      catch: (e) =>
        e instanceof ModelLoadError
          ? e
          : new ModelLoadError({
              message: `cannot reload ${weights.kind} ${weights.path}: ${messageOf(e)}`,
              path: weights.path,
              cause: e,
            }),
    });

  return {
    info: () => ({ ...loaded.info, contextSize: loaded.context.contextSize }),
    tokenize: (text, options) =>
      Int32Array.from(loaded.model.tokenize(text, options?.special ?? false) as unknown as number[]),
    detokenize: (tokens) => loaded.model.detokenize(Array.from(tokens) as Token[], true),
    renderChat: (messages: ReadonlyArray<ChatMessage>, options) =>
      loaded.renderer.render(messages, options?.addGenerationPrompt ?? false),
    renderContinuation: (messages, lastTokens) => loaded.renderer.continuation(messages, lastTokens),
    openSequence,
    score,
    reload,
    evaluatedTokens: () => stats.decodedTokens,
    decodeCalls: () => stats.decodes,
    model: () => loaded.model,
    context: () => loaded.context,
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
