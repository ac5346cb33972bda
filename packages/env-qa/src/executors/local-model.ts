/**
 * `LocalModelExecutor`: the operators' executor as a GGUF run in-process through llama.cpp, for a
 * Workflow-R1 run on one machine without an executor server. It loads its own model instance with
 * `LlamaCppPolicy` from `@workflow-r1/policy` (CPU by default), separate from the trained policy's
 * even when both name the same file, so the trainer's reloads never touch it. `@workflow-r1/policy`
 * is an optional peer dependency, imported only when a local executor is built. The model is freed
 * when the layer's (or `make`'s) scope closes.
 */
import { open } from "node:fs/promises";
import { availableParallelism } from "node:os";
import {
  ConfigError,
  Executor,
  ExecutorHttpError,
  type ExecutorShape,
  ExecutorTimeoutError,
  ModelLoadError,
  type PolicyShape,
} from "@workflow-r1/core";
import { Duration, Effect, Layer, type Scope, Semaphore } from "effect";
import { makeLocalExecutor } from "./local.js";

export interface LocalModelExecutorConfig {
  /** The executor's GGUF file. */
  readonly model: string;
  /** Tokens per sequence: an operator's prompt plus its reply must fit. Default 4096. */
  readonly contextSize?: number;
  /**
   * CPU threads. Default: half the cores (`os.availableParallelism() / 2`, at least 1), leaving the
   * rest to the policy, which samples at the same time: llama.cpp's threads wait for each other,
   * so an oversubscribed CPU slows both down many times over.
   */
  readonly threads?: number;
  /**
   * Operator calls decoded at once (llama.cpp sequences, batched together in one decode per step);
   * further calls wait for one to finish. Default 4.
   */
  readonly sequences?: number;
  /** `false` = CPU only (the default, leaving the GPU to the policy and the learner). */
  readonly gpu?: false | "auto" | "cuda" | "vulkan";
  /**
   * Time limit of one completion once it has a sequence (waiting for a free one is not counted).
   * Default 120 000 ms.
   */
  readonly timeoutMs?: number;
  /** Tokens per completion when the request does not say (operators always say). Default 1024. */
  readonly maxTokens?: number;
}

/** Defaults of {@link LocalModelExecutorConfig}. */
export const localModelExecutorDefaults = {
  contextSize: 4096,
  sequences: 4,
  gpu: false,
  timeoutMs: 120_000,
  maxTokens: 1024,
} as const;

/** A local executor: the core `ExecutorShape` and what it runs on. */
export interface LocalModelExecutorShape extends ExecutorShape {
  /** `local:<model path>`, in messages and the executor's stats. */
  readonly label: string;
  readonly modelPath: string;
  readonly sequences: number;
  readonly contextSize: number;
}

/** Half the cores, at least one. */
const defaultThreads = (): number => Math.max(1, Math.floor(availableParallelism() / 2));

const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/**
 * The file is a GGUF: it exists, is a regular file and starts with the magic `GGUF`. Fails with a
 * `ConfigError` naming `field` and the path otherwise.
 */
export const checkGgufFile = (path: string, field: string): Effect.Effect<void, ConfigError> =>
  Effect.flatMap(
    Effect.promise(() => ggufProblem(path)),
    (problem) =>
      problem === undefined
        ? Effect.void
        : Effect.fail(
            new ConfigError({
              message: `${field}: the executor model ${path} ${problem} (expected a GGUF file, e.g. .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf from tools/fetch-models.sh)`,
              field,
            }),
          ),
  );

/** What keeps `path` from being a GGUF file, or undefined when it is one. Never rejects. */
const ggufProblem = async (path: string): Promise<string | undefined> => {
  try {
    const file = await open(path, "r");
    try {
      if (!(await file.stat()).isFile()) return "is not a file";
      const magic = Buffer.alloc(4);
      const { bytesRead } = await file.read(magic, 0, 4, 0);
      return bytesRead === 4 && magic.toString("latin1") === "GGUF"
        ? undefined
        : "is not a GGUF file (it does not start with the GGUF magic)";
    } finally {
      await file.close();
    }
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    return code === "ENOENT"
      ? "does not exist"
      : code === "EISDIR"
        ? "is not a file"
        : `cannot be read: ${messageOf(e)}`;
  }
};

/**
 * What this file uses of `@workflow-r1/policy`, stated here: the package is an optional peer, so
 * env-qa must build and type-check without it installed.
 */
interface PolicyModule {
  readonly LlamaCppPolicy: {
    readonly make: (config: {
      readonly modelPath: string;
      readonly gpu: false | "auto" | "cuda" | "vulkan";
      readonly contextSize: number;
      readonly sequences: number;
      readonly threads: number;
    }) => Effect.Effect<PolicyShape, ModelLoadError, Scope.Scope>;
  };
}

// A name in a variable: TypeScript does not resolve it, so the optional peer needs no types here.
const POLICY_PACKAGE = "@workflow-r1/policy";

/** `@workflow-r1/policy`, imported now (it loads llama.cpp), or a `ConfigError` saying how to install it. */
const importPolicy = (field: string): Effect.Effect<PolicyModule, ConfigError> =>
  Effect.tryPromise({
    try: () => import(POLICY_PACKAGE) as Promise<PolicyModule>,
    catch: (e) => {
      const code = (e as { code?: unknown }).code;
      return new ConfigError({
        message:
          code === "ERR_MODULE_NOT_FOUND" && messageOf(e).includes("@workflow-r1/policy")
            ? `${field}: kind "local" runs the executor on llama.cpp through @workflow-r1/policy, which is not installed: npm install @workflow-r1/policy (or use kind "http" with an OpenAI-compatible server)`
            : `${field}: kind "local" needs @workflow-r1/policy, which failed to load: ${messageOf(e)}`,
        field,
      });
    },
  });

/** Where the settings came from, for error messages. */
export interface LocalModelExecutorSource {
  /** The settings' option path (default `environment.options.executor`). */
  readonly field?: string;
  /** The model's (default `<field>.model`; e.g. a CLI flag). */
  readonly modelField?: string;
}

/**
 * Build the executor: check the GGUF, import `@workflow-r1/policy`, load the model (freed when the
 * scope closes). Error messages name the options by `source`'s paths.
 */
const make = (
  config: LocalModelExecutorConfig,
  options: LocalModelExecutorSource = {},
): Effect.Effect<LocalModelExecutorShape, ConfigError | ModelLoadError, Scope.Scope> =>
  Effect.gen(function* () {
    const field = options.field ?? "environment.options.executor";
    const modelField = options.modelField ?? `${field}.model`;
    const d = localModelExecutorDefaults;
    const contextSize = config.contextSize ?? d.contextSize;
    const sequences = config.sequences ?? d.sequences;
    const maxTokens = config.maxTokens ?? d.maxTokens;
    if (maxTokens >= contextSize)
      return yield* new ConfigError({
        message: `${field}.maxTokens: ${maxTokens} tokens per reply leave no room for the prompt in contextSize ${contextSize}: raise ${field}.contextSize or lower maxTokens`,
        field: `${field}.maxTokens`,
      });
    yield* checkGgufFile(config.model, modelField);
    const { LlamaCppPolicy } = yield* importPolicy(field);
    const policy = yield* LlamaCppPolicy.make({
      modelPath: config.model,
      gpu: config.gpu ?? d.gpu,
      contextSize,
      sequences,
      threads: config.threads ?? defaultThreads(),
    }).pipe(
      Effect.mapError(
        (e) => new ModelLoadError({ message: `${modelField}: ${e.message}`, path: config.model, cause: e }),
      ),
    );
    const label = `local:${config.model}`;
    const timeoutMs = config.timeoutMs ?? d.timeoutMs;
    // Greedy at temperature 0 (the operators' default), sampling above it (MultiAnswerGenerate).
    const inner = makeLocalExecutor(policy, { maxTokens, sampling: "request" });
    // One permit per sequence, taken before the time limit starts: a call waiting behind others is
    // not timed out for their work.
    const permits = yield* Semaphore.make(sequences);
    // Runs before the model is freed (finalizers run in reverse): later calls get a typed error.
    let closed = false;
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true;
      }),
    );
    const closedError = () =>
      new ExecutorHttpError({
        message: `executor ${label}: closed (the scope that loaded its model has ended)`,
        url: label,
        attempts: 0,
      });
    return {
      label,
      modelPath: config.model,
      sequences,
      contextSize,
      complete: (request) =>
        permits.withPermits(1)(
          Effect.suspend(() => (closed ? Effect.fail(closedError()) : inner.complete(request))).pipe(
            Effect.timeoutOrElse({
              duration: Duration.millis(timeoutMs),
              orElse: () =>
                Effect.fail(
                  new ExecutorTimeoutError({
                    message: `executor ${label}: no completion within ${timeoutMs} ms`,
                    url: label,
                    timeoutMs,
                    attempts: 1,
                  }),
                ),
            }),
          ),
        ),
    };
  });

export const LocalModelExecutor = {
  /** The `Executor` layer: the model is loaded when the layer is built and freed with its scope. */
  layer: (
    config: LocalModelExecutorConfig,
    options: LocalModelExecutorSource = {},
  ): Layer.Layer<Executor, ConfigError | ModelLoadError> => Layer.effect(Executor, make(config, options)),
  make,
} as const;
