import { availableParallelism } from "node:os";
import {
  Learner,
  type LearnerSequence,
  type LearnerShape,
  NativeLearnerError,
  type StepStats,
} from "@workflow-r1/core";
import { Effect, Layer, type Scope, Semaphore } from "effect";
import { backendsDirectory, loadAddon, type NativeInfo, type NativeLearnerHandle } from "./native.js";
import { type PackedMicroBatch, packTokens, planPackedBatches } from "./pack.js";

/** Weight matrices of a llama block that LoRA can adapt. */
export type LoraTarget = "attn_q" | "attn_k" | "attn_v" | "attn_output" | "ffn_gate" | "ffn_up" | "ffn_down";

export const ALL_LORA_TARGETS: ReadonlyArray<LoraTarget> = [
  "attn_q",
  "attn_k",
  "attn_v",
  "attn_output",
  "ffn_gate",
  "ffn_up",
  "ffn_down",
];

export interface LoraConfig {
  readonly rank: number;
  /** Scale numerator: the adapter adds (alpha / rank)·B·A. Default = rank. */
  readonly alpha?: number;
  /** Default: every attention and FFN matrix. */
  readonly targets?: ReadonlyArray<LoraTarget>;
}

export interface OptimizerConfig {
  /** Default 1e-5. */
  readonly learningRate?: number;
  /** Default 0.9. */
  readonly beta1?: number;
  /** Default 0.999. */
  readonly beta2?: number;
  /** Default 1e-8. */
  readonly eps?: number;
  /** Decoupled weight decay (applied to every trainable tensor). Default 0. */
  readonly weightDecay?: number;
  /** Global gradient-norm clip; ≤ 0 or Infinity disables. Default 1. */
  readonly maxGradNorm?: number;
  /** Learning rate of step `step` (1-based) given the base rate; e.g. warm-up or cosine decay. */
  readonly schedule?: (step: number, learningRate: number) => number;
}

export interface GgmlLearnerConfig {
  /**
   * A llama / qwen2 GGUF of any tensor type ggml can convert to F32 — F32, F16, BF16, Q8_0, Q4_0,
   * Q4_1, Q4_K, Q6_K, Q5_0, …, mixed per tensor as real files are. Full fine-tuning and `frozen`
   * dequantize every tensor to F32 master weights at load (4 bytes per parameter, whatever the file
   * stores); LoRA keeps the base as stored and trains F32 adapters over it.
   */
  readonly modelPath: string;
  /** CPU threads. Default: available cores. */
  readonly threads?: number;
  /** Run on the GPU backend (needs an addon built with WORKFLOW_R1_CUDA=1). Default false. */
  readonly gpu?: boolean;
  /** LoRA mode; omitted = full fine-tuning of every weight (or `frozen`). */
  readonly lora?: LoraConfig;
  /**
   * Inference only — the KL reference of full fine-tuning: weights dequantized to F32 as in full
   * mode (its log-probabilities equal a full learner's at step 0 on the same file), but no
   * gradients and no AdamW moments (memory: 4 bytes per parameter plus the work buffer).
   * `backward`, `step`, `save`, `saveState`, `loadState`, `gradNorm` and `zeroGrad` fail with a
   * NativeLearnerError saying the learner is frozen. Not with `lora`: a LoRA learner's
   * `baseLogprobs` is its own reference. Default false.
   */
  readonly frozen?: boolean;
  readonly optimizer?: OptimizerConfig;
  /**
   * Tokens one native call processes: sequences are packed end to end into rows, rows into
   * micro-batches of at most this many tokens (a longer sequence still gets a row). Default 4096.
   */
  readonly microBatchTokens?: number;
  /**
   * Matrix products of trainable F32 weights: "f32" (default), or "f16" (weights cast to F16 per
   * product, F32 master weights, gradients and AdamW moments; faster on GPUs with F16 units).
   */
  readonly precision?: "f32" | "f16";
  /**
   * Compiled graphs kept, one per batch shape; each holds its own work buffer (on a GPU, tens of GB
   * for a 0.5B model at 4,096 tokens: see BENCHMARKS.md). Default 4 on the CPU, 2 on a GPU.
   */
  readonly graphCacheSize?: number;
  /**
   * When `logprobs(batch)` fits one micro-batch, run it as the forward half of the training graph
   * and keep its activations, so a following `backward(batch, …)` on the same batch array with
   * unchanged weights skips the forward pass. Default true.
   */
  readonly reuseForward?: boolean;
  /**
   * LoRA: keep a transposed copy of each frozen base matrix (quantized ones dequantized to F16),
   * made once at load, so input gradients need no per-call transpose or dequantization. Costs about
   * one more copy of the base in F16 (see `info().memory.transposedBase`); measured on the CPU
   * (~21M, 1 thread): +7% LoRA forward+backward over a Q4_K base, none over F16. Default false.
   */
  readonly transposedBase?: boolean;
  /** Seed of the LoRA A initialisation. Default 0. */
  readonly seed?: number;
}

/** The Learner plus what tests, benchmarks and checkpoints need. */
export interface GgmlLearnerShape extends LearnerShape {
  readonly info: () => NativeInfo;
  /**
   * log p(tokens[t] | tokens[< t]) under the base model without the LoRA adapter, where mask[t] = 1
   * (NaN elsewhere; the packing of `logprobs`): the KL reference of LoRA training without a second
   * model. A frozen learner's base is its model (the same as `logprobs`). A full fine-tuning
   * learner no longer has its base weights: fails with NativeLearnerError (open a `frozen` learner
   * on the same file for the reference). Like every computation it drops the forward pass
   * `reuseForward` keeps, so call it before `logprobs`, not between `logprobs` and `backward`.
   */
  readonly baseLogprobs: (
    batch: ReadonlyArray<LearnerSequence>,
  ) => Effect.Effect<Float32Array[], NativeLearnerError>;
  /** Global norm of the gradient accumulated since the last step. */
  readonly gradNorm: () => Effect.Effect<number, NativeLearnerError>;
  /** Drop the accumulated gradient without stepping. */
  readonly zeroGrad: () => Effect.Effect<void, NativeLearnerError>;
  /** Trainable tensors and their element counts. */
  readonly parameterNames: () => ReadonlyArray<readonly [string, number]>;
  /**
   * Test hooks: read / overwrite one F32 element of a tensor, read its accumulated gradient.
   * Synchronous: call them only while no other learner operation is running.
   */
  readonly getParameter: (name: string, index: number) => number;
  readonly setParameter: (name: string, index: number, value: number) => void;
  readonly gradient: (name: string, index: number) => number;
  /**
   * Profiling: while on, each graph is computed node by node and timed per op type (slower; for
   * finding where the time goes). `takeProfile` returns seconds and node counts per op and resets.
   */
  readonly setProfiling: (on: boolean) => void;
  /**
   * Compile (and keep) the graph for `rows` rows of `length` tokens without computing, and report
   * its work-buffer bytes: what a batch of that shape needs beyond weights, gradients and moments.
   */
  readonly reserve: (shape: {
    readonly rows: number;
    readonly length: number;
    readonly training: boolean;
  }) => Effect.Effect<number, NativeLearnerError>;
  readonly takeProfile: () => Record<string, { seconds: number; count: number }>;
}

const fail = (operation: string, message: string) => new NativeLearnerError({ operation, message });
const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Open a learner on a GGUF. Prefer `GgmlLearner.layer` / `GgmlLearner.make`, which free it. */
export const createGgmlLearner = (
  config: GgmlLearnerConfig,
): GgmlLearnerShape & { readonly dispose: () => Promise<void> } => {
  const lora = config.lora;
  if (lora !== undefined && (!Number.isInteger(lora.rank) || lora.rank < 1))
    throw fail("open", `lora.rank must be a positive integer, got ${lora.rank}`);
  const threads = config.threads ?? availableParallelism();
  if (!Number.isInteger(threads) || threads < 1)
    throw fail("open", `threads must be a positive integer, got ${threads}`);
  const microBatchTokens = config.microBatchTokens ?? 4096;
  if (!Number.isInteger(microBatchTokens) || microBatchTokens < 1)
    throw fail("open", `microBatchTokens must be a positive integer, got ${microBatchTokens}`);
  if (config.precision !== undefined && config.precision !== "f32" && config.precision !== "f16")
    throw fail("open", `precision must be "f32" or "f16", got ${String(config.precision)}`);
  const frozen = config.frozen ?? false;
  if (frozen && lora !== undefined)
    throw fail(
      "open",
      "a frozen learner has no LoRA adapter: drop `lora` (a LoRA learner's baseLogprobs gives its base's log-probabilities)",
    );
  let native: NativeLearnerHandle;
  try {
    const addon = loadAddon();
    native = new addon.NativeLearner(config.modelPath, backendsDirectory(), {
      threads,
      gpu: config.gpu ?? false,
      loraRank: lora?.rank ?? 0,
      loraAlpha: lora?.alpha ?? lora?.rank ?? 0,
      loraTargets: lora?.targets ?? ALL_LORA_TARGETS,
      seed: config.seed ?? 0,
      precision: config.precision ?? "f32",
      graphCacheSize: config.graphCacheSize ?? (config.gpu ? 2 : 4),
      transposedBase: config.transposedBase ?? false,
      frozen,
    });
  } catch (e) {
    throw fail("open", `${config.modelPath}: ${messageOf(e)}`);
  }
  const info = native.info();
  const opt = config.optimizer ?? {};
  const baseLr = opt.learningRate ?? 1e-5;
  let disposed = false;

  // Native operations run off the main thread one at a time, in call order: one permit, the way
  // the policy's sequence slots are a semaphore.
  const lock = Semaphore.makeUnsafe(1);
  const toError = (operation: string) => (e: unknown) =>
    e instanceof NativeLearnerError ? e : fail(operation, messageOf(e));
  const live = (operation: string) => {
    if (disposed) throw fail(operation, "the learner was freed (its scope closed)");
  };
  const trainable = (operation: string) => {
    if (frozen)
      throw fail(
        operation,
        `the learner is frozen (inference only, opened with \`frozen: true\`): ${operation} is not available`,
      );
  };

  const call = <A>(operation: string, f: () => A): Effect.Effect<A, NativeLearnerError> =>
    lock.withPermits(1)(
      Effect.try({
        try: () => {
          live(operation);
          return f();
        },
        catch: toError(operation),
      }),
    );

  // A native operation runs to its end even when its fiber is interrupted (Ctrl-C): the worker
  // thread cannot be stopped, and freeing the learner under it would crash the process. The
  // interruption takes effect when the operation returns, then `dispose` frees the memory.
  const callAsync = <A>(operation: string, f: () => Promise<A>): Effect.Effect<A, NativeLearnerError> =>
    lock.withPermits(1)(
      Effect.uninterruptible(
        Effect.tryPromise({
          try: async () => {
            live(operation);
            return await f();
          },
          catch: toError(operation),
        }),
      ),
    );

  const validate = (operation: string, batch: ReadonlyArray<LearnerSequence>) => {
    if (batch.length === 0) throw fail(operation, "empty batch: no sequences");
    batch.forEach((s, i) => {
      const n = s.tokens.length;
      if (n === 0) throw fail(operation, `sequence ${i} has no tokens`);
      if (n > info.context)
        throw fail(operation, `sequence ${i} has ${n} tokens, over the context of ${info.context}`);
      if (s.mask.length !== n)
        throw fail(operation, `sequence ${i}: mask has ${s.mask.length} entries for ${n} tokens`);
      if (s.mask[0] === 1)
        throw fail(operation, `sequence ${i}: mask[0] = 1, but the first token has no prediction`);
      for (let t = 0; t < n; t++) {
        const id = s.tokens[t];
        if (!Number.isInteger(id) || id < 0 || id >= info.vocab)
          throw fail(
            operation,
            `sequence ${i}, position ${t}: token id ${id} is outside the vocabulary [0, ${info.vocab})`,
          );
      }
    });
  };

  const planFor = (batch: ReadonlyArray<LearnerSequence>) =>
    planPackedBatches(
      batch.map((s) => s.tokens.length),
      microBatchTokens,
      info.context,
    );
  /** Run `f` per packed micro-batch of `plans` (from `planFor(batch)`). */
  const eachMicroBatch = async (
    batch: ReadonlyArray<LearnerSequence>,
    plans: ReadonlyArray<PackedMicroBatch>,
    f: (plan: PackedMicroBatch, tokens: Int32Array, segments: Int32Array) => Promise<void>,
  ) => {
    for (const plan of plans) {
      const { tokens, segments } = packTokens(plan, batch);
      await f(plan, tokens, segments);
    }
  };
  // Position t (≥ 1) of a sequence is predicted at the entry of its token t − 1.
  const entry = (plan: PackedMicroBatch, k: number, t: number) =>
    plan.placements[k].row * plan.length + plan.placements[k].offset + t - 1;

  // The batch whose forward half ran last in the training graph (see `reuseForward`).
  let kept: { batch: ReadonlyArray<LearnerSequence>; plan: PackedMicroBatch } | undefined;
  const reuseForward = config.reuseForward ?? true;

  /** Log-probabilities of the current model, or (`base`) of the base without the LoRA adapter. */
  const forwardLogprobs = (operation: string, batch: ReadonlyArray<LearnerSequence>, base: boolean) =>
    callAsync(operation, async () => {
      validate(operation, batch);
      kept = undefined;
      const out = batch.map((s) => new Float32Array(s.tokens.length).fill(Number.NaN));
      const plans = planFor(batch);
      // A frozen learner has no training graph; the base model's pass is never followed by a backward.
      const single = reuseForward && !frozen && !base && plans.length === 1;
      await eachMicroBatch(batch, plans, async (plan, tokens, segments) => {
        const lp = single
          ? await native.forwardKept(tokens, segments, plan.length, plan.rows)
          : await native.forward(tokens, segments, plan.length, plan.rows, base);
        if (single) kept = { batch, plan };
        plan.placements.forEach((p, k) => {
          const { mask } = batch[p.sequence];
          for (let t = 1; t < mask.length; t++) if (mask[t] === 1) out[p.sequence][t] = lp[entry(plan, k, t)];
        });
      });
      return out;
    });

  const logprobs: LearnerShape["logprobs"] = (batch) => forwardLogprobs("logprobs", batch, false);

  const baseLogprobs: GgmlLearnerShape["baseLogprobs"] = (batch) =>
    lora === undefined && !frozen
      ? Effect.fail(
          fail(
            "baseLogprobs",
            "a full fine-tuning learner trains its base weights in place, so it has no base model to " +
              "compute: open a learner with `frozen: true` on the same file for the reference",
          ),
        )
      : forwardLogprobs("baseLogprobs", batch, lora !== undefined);

  const backward: LearnerShape["backward"] = (batch, coefficients) =>
    callAsync("backward", async () => {
      trainable("backward");
      validate("backward", batch);
      if (coefficients.length !== batch.length)
        throw fail("backward", `${coefficients.length} coefficient arrays for ${batch.length} sequences`);
      batch.forEach((s, i) => {
        const c = coefficients[i];
        if (c.length !== s.tokens.length)
          throw fail("backward", `sequence ${i}: ${c.length} coefficients for ${s.tokens.length} tokens`);
        for (let t = 0; t < c.length; t++)
          if (s.mask[t] === 1 && !Number.isFinite(c[t]))
            throw fail("backward", `sequence ${i}, position ${t}: coefficient ${c[t]} is not finite`);
      });
      const coefficientsFor = (plan: PackedMicroBatch) => {
        const coef = new Float32Array(plan.length * plan.rows);
        plan.placements.forEach((p, k) => {
          const { mask } = batch[p.sequence];
          const c = coefficients[p.sequence];
          for (let t = 1; t < mask.length; t++) if (mask[t] === 1) coef[entry(plan, k, t)] = c[t];
        });
        return coef;
      };
      const reusable = kept !== undefined && kept.batch === batch;
      const plan = kept?.plan;
      kept = undefined;
      if (reusable && plan !== undefined) {
        // The same batch array right after its logprobs: the native side refuses if the weights
        // changed in between, and the full pass below runs instead.
        const done = await native.backwardKept(coefficientsFor(plan), plan.length, plan.rows).then(
          () => true,
          () => false,
        );
        if (done) return;
      }
      await eachMicroBatch(batch, planFor(batch), async (plan, tokens, segments) => {
        await native.backward(tokens, segments, plan.length, plan.rows, coefficientsFor(plan));
      });
    });

  const step: LearnerShape["step"] = () =>
    callAsync("step", async (): Promise<StepStats> => {
      trainable("step");
      kept = undefined;
      const next = native.info().step + 1;
      const learningRate = opt.schedule ? opt.schedule(next, baseLr) : baseLr;
      if (!Number.isFinite(learningRate) || learningRate < 0)
        throw fail("step", `the schedule gave learning rate ${learningRate} at step ${next}`);
      const maxNorm = opt.maxGradNorm ?? 1;
      const gradNorm = await native.step(
        learningRate,
        opt.beta1 ?? 0.9,
        opt.beta2 ?? 0.999,
        opt.eps ?? 1e-8,
        opt.weightDecay ?? 0,
        Number.isFinite(maxNorm) ? maxNorm : 0,
      );
      return { gradNorm, learningRate, step: next };
    });

  return {
    logprobs,
    baseLogprobs,
    backward,
    step,
    save: (path, options) =>
      callAsync("save", () => {
        trainable("save");
        if (options.format === "lora" && lora === undefined)
          throw fail("save", 'format "lora" needs a learner configured with `lora`');
        return native.save(path, options.format);
      }),
    exportAdapter: () =>
      callAsync("exportAdapter", () => {
        if (lora === undefined)
          throw fail("exportAdapter", "exporting an adapter needs a learner configured with `lora`");
        return native.adapterBytes();
      }),
    saveState: (path) =>
      callAsync("saveState", () => {
        trainable("saveState");
        return native.saveState(path);
      }),
    loadState: (path) =>
      callAsync("loadState", () => {
        trainable("loadState");
        return native.loadState(path);
      }),
    info: () => native.info(),
    gradNorm: () =>
      callAsync("gradNorm", () => {
        trainable("gradNorm");
        return native.gradNorm();
      }),
    zeroGrad: () =>
      call("zeroGrad", () => {
        trainable("zeroGrad");
        native.zeroGrad();
      }),
    parameterNames: () => native.parameterNames(),
    getParameter: (name, index) => native.getParameter(name, index),
    setParameter: (name, index, value) => native.setParameter(name, index, value),
    gradient: (name, index) => native.gradient(name, index),
    setProfiling: (on) => native.setProfiling(on),
    reserve: ({ rows, length, training }) =>
      callAsync("reserve", () => {
        if (training) trainable("reserve");
        return native.reserve(length, rows, training);
      }),
    takeProfile: () => native.takeProfile(),
    /** Free the native memory once running operations are done; later calls fail. */
    dispose: () =>
      Effect.runPromise(
        lock.withPermits(1)(
          Effect.sync(() => {
            if (!disposed) native.free();
            disposed = true;
          }),
        ),
      ),
  };
};

const acquire = (config: GgmlLearnerConfig) =>
  Effect.acquireRelease(
    Effect.try({
      try: () => createGgmlLearner(config),
      catch: (e) => (e instanceof NativeLearnerError ? e : fail("open", messageOf(e))),
    }),
    (l) => Effect.promise(() => l.dispose()),
  );

/** The core `Learner` on ggml; native memory is freed when the scope closes. */
export const GgmlLearner = {
  layer: (config: GgmlLearnerConfig): Layer.Layer<Learner, NativeLearnerError> =>
    Layer.effect(Learner, acquire(config)),
  make: (config: GgmlLearnerConfig): Effect.Effect<GgmlLearnerShape, NativeLearnerError, Scope.Scope> =>
    acquire(config),
};
