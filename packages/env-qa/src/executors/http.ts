/**
 * An `Executor` over any OpenAI-compatible chat-completions server (`POST {baseUrl}/chat/completions`):
 * vLLM, llama-server, OpenAI, … Timeouts, bounded retries and a concurrency limit come from Effect;
 * the response body is validated with Schema; the API key is kept `Redacted`.
 */
import {
  type Completion,
  type CompletionRequest,
  ConfigError,
  Executor,
  ExecutorHttpError,
  type ExecutorShape,
  ExecutorTimeoutError,
} from "@workflow-r1/core";
import { Effect, Layer, Redacted, Result, Schema, Semaphore } from "effect";
import { type PostFailure, postJson, type RetryPolicy } from "./transport.js";

export interface HttpExecutorConfig {
  /** e.g. `http://127.0.0.1:8000/v1`. Default: env `WORKFLOW_R1_EXECUTOR_URL`. */
  readonly baseUrl?: string;
  /** Bearer token. Default: env `WORKFLOW_R1_EXECUTOR_KEY` (none when unset). */
  readonly apiKey?: string | Redacted.Redacted<string>;
  /** Model name sent in the body. Default: env `WORKFLOW_R1_EXECUTOR_MODEL`. */
  readonly model?: string;
  /** Per-attempt time limit. Default 60 000 ms. */
  readonly timeoutMs?: number;
  /** Retries after the first attempt on 429, 5xx, network errors and timeouts. Default 3. */
  readonly maxRetries?: number;
  /** First backoff delay (doubles per retry, ±20% jitter). Default 500 ms. */
  readonly baseDelayMs?: number;
  /** Cap on one backoff delay, Retry-After included. Default 30 000 ms. */
  readonly maxDelayMs?: number;
  /** Requests in flight at once (an Effect semaphore). Default 8. */
  readonly concurrency?: number;
  /** Defaults for requests that leave them out. */
  readonly temperature?: number;
  readonly maxTokens?: number;
  /** Extra body fields (e.g. `{ top_p: 1 }`, vendor options). */
  readonly extraBody?: Readonly<Record<string, unknown>>;
  /** Environment to read the defaults from. Default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** The config after env defaults, as the executor uses it. */
export interface ResolvedHttpExecutorConfig extends RetryPolicy {
  readonly url: string;
  readonly model: string;
  readonly apiKey?: Redacted.Redacted<string>;
  readonly concurrency: number;
  readonly temperature?: number;
  readonly maxTokens?: number;
  readonly extraBody: Readonly<Record<string, unknown>>;
}

const positive = (
  name: string,
  value: number | undefined,
  fallback: number,
  min = 1,
): Effect.Effect<number, ConfigError> =>
  value === undefined
    ? Effect.succeed(fallback)
    : Number.isFinite(value) && value >= min
      ? Effect.succeed(value)
      : Effect.fail(
          new ConfigError({
            message: `executor.${name} must be a number >= ${min}, got ${value}`,
            field: `executor.${name}`,
          }),
        );

/** Fill in env defaults and check the config. */
export const resolveHttpExecutorConfig = (
  config: HttpExecutorConfig = {},
): Effect.Effect<ResolvedHttpExecutorConfig, ConfigError> =>
  Effect.gen(function* () {
    const env = config.env ?? process.env;
    const baseUrl = config.baseUrl ?? env.WORKFLOW_R1_EXECUTOR_URL;
    if (baseUrl === undefined || baseUrl === "") {
      return yield* new ConfigError({
        message:
          "executor base URL missing: set executor.baseUrl or WORKFLOW_R1_EXECUTOR_URL (e.g. http://127.0.0.1:8000/v1)",
        field: "executor.baseUrl",
      });
    }
    if (!URL.canParse(baseUrl)) {
      return yield* new ConfigError({
        message: `executor base URL is not a URL: ${baseUrl}`,
        field: "executor.baseUrl",
      });
    }
    const model = config.model ?? env.WORKFLOW_R1_EXECUTOR_MODEL;
    if (model === undefined || model === "") {
      return yield* new ConfigError({
        message: "executor model missing: set executor.model or WORKFLOW_R1_EXECUTOR_MODEL",
        field: "executor.model",
      });
    }
    const rawKey = config.apiKey ?? env.WORKFLOW_R1_EXECUTOR_KEY;
    const apiKey =
      rawKey === undefined || rawKey === ""
        ? undefined
        : Redacted.isRedacted(rawKey)
          ? rawKey
          : Redacted.make(rawKey, { label: "WORKFLOW_R1_EXECUTOR_KEY" });
    return {
      url: `${baseUrl.replace(/\/+$/, "")}/chat/completions`,
      model,
      ...(apiKey === undefined ? {} : { apiKey }),
      timeoutMs: yield* positive("timeoutMs", config.timeoutMs, 60_000),
      maxRetries: yield* positive("maxRetries", config.maxRetries, 3, 0),
      baseDelayMs: yield* positive("baseDelayMs", config.baseDelayMs, 500, 0),
      maxDelayMs: yield* positive("maxDelayMs", config.maxDelayMs, 30_000, 0),
      concurrency: yield* positive("concurrency", config.concurrency, 8),
      ...(config.temperature === undefined ? {} : { temperature: config.temperature }),
      ...(config.maxTokens === undefined ? {} : { maxTokens: config.maxTokens }),
      extraBody: config.extraBody ?? {},
    };
  });

/** The part of an OpenAI chat-completions response the executor reads. */
export const ChatCompletionResponse = Schema.Struct({
  choices: Schema.NonEmptyArray(
    Schema.Struct({
      message: Schema.Struct({ content: Schema.NullOr(Schema.String) }),
      finish_reason: Schema.optional(Schema.NullOr(Schema.String)),
    }),
  ),
});

const decodeResponse = Schema.decodeUnknownResult(ChatCompletionResponse);

const toExecutorError = (
  url: string,
  timeoutMs: number,
  f: PostFailure,
): ExecutorHttpError | ExecutorTimeoutError =>
  f.kind === "timeout"
    ? new ExecutorTimeoutError({
        message: `executor ${url}: ${f.message} (after ${f.attempts} attempt${f.attempts === 1 ? "" : "s"})`,
        url,
        timeoutMs,
        attempts: f.attempts,
      })
    : new ExecutorHttpError({
        message: `executor ${url}: ${f.message} (after ${f.attempts} attempt${f.attempts === 1 ? "" : "s"})`,
        url,
        ...(f.status === undefined ? {} : { status: f.status }),
        attempts: f.attempts,
      });

/** Build the executor from a resolved config (one semaphore per executor). */
export const makeHttpExecutor = (config: ResolvedHttpExecutorConfig): Effect.Effect<ExecutorShape> =>
  Effect.gen(function* () {
    const semaphore = yield* Semaphore.make(config.concurrency);
    const complete = (
      request: CompletionRequest,
    ): Effect.Effect<Completion, ExecutorHttpError | ExecutorTimeoutError> => {
      const temperature = request.temperature ?? config.temperature;
      const maxTokens = request.maxTokens ?? config.maxTokens;
      const body = {
        ...config.extraBody,
        model: config.model,
        messages: request.messages.map((m) => ({ role: m.role, content: m.content })),
        ...(temperature === undefined ? {} : { temperature }),
        ...(maxTokens === undefined ? {} : { max_tokens: maxTokens }),
        ...(request.stop === undefined || request.stop.length === 0 ? {} : { stop: request.stop }),
      };
      return postJson({
        url: config.url,
        body,
        ...(config.apiKey === undefined ? {} : { apiKey: config.apiKey }),
        policy: config,
      }).pipe(
        Effect.mapError((f) => toExecutorError(config.url, config.timeoutMs, f)),
        Effect.flatMap(({ json, attempts }) => {
          const decoded = decodeResponse(json);
          if (Result.isFailure(decoded)) {
            return Effect.fail(
              new ExecutorHttpError({
                message: `executor ${config.url}: unexpected response body: ${decoded.failure.message.replace(/\s+/g, " ")}`,
                url: config.url,
                attempts,
              }),
            );
          }
          const choice = decoded.success.choices[0];
          return Effect.succeed<Completion>({
            text: choice.message.content ?? "",
            finishReason: choice.finish_reason === "length" ? "length" : "stop",
          });
        }),
        semaphore.withPermits(1),
      );
    };
    return { complete };
  });

export const HttpExecutor = {
  /** An `Executor` layer over an OpenAI-compatible server; fails with `ConfigError` on a bad config. */
  layer: (config: HttpExecutorConfig = {}): Layer.Layer<Executor, ConfigError> =>
    Layer.effect(Executor, Effect.flatMap(resolveHttpExecutorConfig(config), makeHttpExecutor)),
  make: (config: HttpExecutorConfig = {}): Effect.Effect<ExecutorShape, ConfigError> =>
    Effect.flatMap(resolveHttpExecutorConfig(config), makeHttpExecutor),
} as const;
