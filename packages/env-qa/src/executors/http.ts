/**
 * An `Executor` over any OpenAI-compatible chat-completions server (`POST {baseUrl}/chat/completions`):
 * vLLM, llama-server, OpenAI, … Timeouts, bounded retries and a concurrency limit come from Effect;
 * the response body is validated with Schema; the API key is kept `Redacted`. `probe` checks the
 * endpoint once (at start-up) and fails with an `ExecutorUnreachableError` naming the URL and cause.
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
import { ExecutorUnreachableError } from "./errors.js";
import {
  type AttemptError,
  checkStatus,
  excerpt,
  type PostFailure,
  parseJsonBody,
  postJson,
  type RetryPolicy,
  requestOnce,
  scrub,
  statusError,
} from "./transport.js";

export interface HttpExecutorConfig {
  /** e.g. `http://127.0.0.1:8000/v1`. Default: env `WORKFLOW_R1_EXECUTOR_URL`. */
  readonly baseUrl?: string;
  /** Bearer token. Default: env `WORKFLOW_R1_EXECUTOR_KEY` (none when unset). */
  readonly apiKey?: string | Redacted.Redacted<string>;
  /** Model name sent in the body. Default: env `WORKFLOW_R1_EXECUTOR_MODEL`. */
  readonly model?: string;
  /**
   * Per-attempt time limit. Default 40 000 ms: with the default `maxRetries` a hung server costs at
   * most 3 × 40 s plus ~2 s of backoff, about 2 minutes per call.
   */
  readonly timeoutMs?: number;
  /** Retries after the first attempt on 429, 5xx, network errors and timeouts. Default 2. */
  readonly maxRetries?: number;
  /** First backoff delay (doubles per retry, ±20% jitter). Default 500 ms. */
  readonly baseDelayMs?: number;
  /** Cap on one backoff delay, Retry-After included. Default 30 000 ms. */
  readonly maxDelayMs?: number;
  /** Requests in flight at once (an Effect semaphore). Default 8. */
  readonly concurrency?: number;
  /** Time limit of the start-up check (`probe`). Default 10 000 ms. */
  readonly probeTimeoutMs?: number;
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
  /** The base URL without trailing slashes, e.g. `http://127.0.0.1:8000/v1`. */
  readonly baseUrl: string;
  /** `{baseUrl}/chat/completions`. */
  readonly url: string;
  readonly model: string;
  readonly apiKey?: Redacted.Redacted<string>;
  readonly concurrency: number;
  readonly probeTimeoutMs: number;
  readonly temperature?: number;
  readonly maxTokens?: number;
  readonly extraBody: Readonly<Record<string, unknown>>;
}

/** Defaults of the HTTP executor's time limits and retries. */
export const httpExecutorDefaults = {
  timeoutMs: 40_000,
  maxRetries: 2,
  baseDelayMs: 500,
  maxDelayMs: 30_000,
  concurrency: 8,
  probeTimeoutMs: 10_000,
} as const;

/** An integer option ≥ `min` (milliseconds, counts); anything else is a `ConfigError` naming it. */
const integerAtLeast = (
  name: string,
  value: unknown,
  fallback: number,
  min: number,
  unit = "",
): Effect.Effect<number, ConfigError> =>
  value === undefined
    ? Effect.succeed(fallback)
    : typeof value === "number" && Number.isInteger(value) && value >= min
      ? Effect.succeed(value)
      : Effect.fail(
          new ConfigError({
            message: `executor.${name} must be an integer >= ${min}${unit}, got ${JSON.stringify(value) ?? String(value)}`,
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
    if (!URL.canParse(baseUrl) || !/^https?:$/.test(new URL(baseUrl).protocol)) {
      return yield* new ConfigError({
        message: `executor base URL is not an http(s) URL: ${baseUrl} (e.g. http://127.0.0.1:8000/v1)`,
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
    const base = baseUrl.replace(/\/+$/, "");
    const d = httpExecutorDefaults;
    return {
      baseUrl: base,
      url: `${base}/chat/completions`,
      model,
      ...(apiKey === undefined ? {} : { apiKey }),
      timeoutMs: yield* integerAtLeast("timeoutMs", config.timeoutMs, d.timeoutMs, 1, " (milliseconds)"),
      maxRetries: yield* integerAtLeast("maxRetries", config.maxRetries, d.maxRetries, 0),
      baseDelayMs: yield* integerAtLeast(
        "baseDelayMs",
        config.baseDelayMs,
        d.baseDelayMs,
        0,
        " (milliseconds)",
      ),
      maxDelayMs: yield* integerAtLeast("maxDelayMs", config.maxDelayMs, d.maxDelayMs, 0, " (milliseconds)"),
      concurrency: yield* integerAtLeast("concurrency", config.concurrency, d.concurrency, 1),
      probeTimeoutMs: yield* integerAtLeast(
        "probeTimeoutMs",
        config.probeTimeoutMs,
        d.probeTimeoutMs,
        1,
        " (milliseconds)",
      ),
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

/** An HTTP executor: the core `ExecutorShape`, its base URL and its start-up check. */
export interface HttpExecutorShape extends ExecutorShape {
  readonly baseUrl: string;
  /**
   * Check the endpoint once, with a short time limit and no retries: `GET {baseUrl}/models`, and
   * when the server has no such route (or its answer is not a JSON object) a 1-token completion.
   * Fails with an `ExecutorUnreachableError` naming the URL and the cause.
   */
  readonly probe: (options?: {
    readonly timeoutMs?: number;
  }) => Effect.Effect<void, ExecutorUnreachableError>;
}

/** Whether an executor can be checked at start-up (an {@link HttpExecutorShape}). */
export const isProbeableExecutor = (
  executor: ExecutorShape,
): executor is ExecutorShape & Pick<HttpExecutorShape, "probe" | "baseUrl"> =>
  typeof (executor as Partial<HttpExecutorShape>).probe === "function" &&
  typeof (executor as Partial<HttpExecutorShape>).baseUrl === "string";

const HINT =
  "start the executor server, or fix executor.baseUrl / WORKFLOW_R1_EXECUTOR_URL (environment.options.checkExecutor: false skips this check)";

const unreachable = (
  config: ResolvedHttpExecutorConfig,
  what: string,
  e: AttemptError,
): ExecutorUnreachableError =>
  new ExecutorUnreachableError({
    message: `executor ${config.baseUrl} is not reachable: ${what}: ${e.message}; ${HINT}`,
    url: config.baseUrl,
    reason: e.kind,
    ...(e.status === undefined ? {} : { status: e.status }),
  });

/** The start-up check of {@link HttpExecutorShape.probe}, over a resolved config. */
export const probeHttpExecutor = (
  config: ResolvedHttpExecutorConfig,
  options: { readonly timeoutMs?: number } = {},
): Effect.Effect<void, ExecutorUnreachableError> => {
  const timeoutMs = options.timeoutMs ?? config.probeTimeoutMs;
  const key = config.apiKey === undefined ? {} : { apiKey: config.apiKey };
  const modelsUrl = `${config.baseUrl}/models`;
  const completion = Effect.gen(function* () {
    const what = `POST ${config.url} (1-token check)`;
    const answer = yield* requestOnce({
      url: config.url,
      method: "POST",
      body: JSON.stringify({
        ...config.extraBody,
        model: config.model,
        messages: [{ role: "user", content: "Reply with OK." }],
        max_tokens: 1,
        temperature: 0,
      }),
      ...key,
      timeoutMs,
    }).pipe(
      Effect.flatMap((a) => checkStatus(a, config.apiKey)),
      Effect.flatMap((a) => parseJsonBody(a, config.apiKey)),
      Effect.mapError((e) => unreachable(config, what, e)),
    );
    const decoded = decodeResponse(answer);
    if (Result.isFailure(decoded))
      return yield* new ExecutorUnreachableError({
        message: `executor ${config.baseUrl} is not an OpenAI-compatible chat-completions server: ${what}: unexpected response body: ${scrub(excerpt(JSON.stringify(answer) ?? ""), config.apiKey)}; ${HINT}`,
        url: config.baseUrl,
        reason: "body",
      });
  });
  return Effect.gen(function* () {
    // Nothing behind the port, or a hung server: fail now (a completion would not fare better).
    const models = yield* requestOnce({ url: modelsUrl, method: "GET", ...key, timeoutMs }).pipe(
      Effect.mapError((e) => unreachable(config, `GET ${modelsUrl}`, e)),
    );
    if (models.status === 401 || models.status === 403) {
      return yield* unreachable(
        config,
        `GET ${modelsUrl} (check executor.apiKey / WORKFLOW_R1_EXECUTOR_KEY)`,
        statusError(models, config.apiKey),
      );
    }
    if (models.status >= 200 && models.status < 300) {
      const json = yield* Effect.option(parseJsonBody(models));
      if (json._tag === "Some" && typeof json.value === "object" && json.value !== null) return;
    }
    // No /models route (404, 405), an error status, or a body that is not an OpenAI list: the
    // completion route the executor uses decides.
    yield* completion;
  });
};

/** Build the executor from a resolved config (one semaphore per executor). */
export const makeHttpExecutor = (config: ResolvedHttpExecutorConfig): Effect.Effect<HttpExecutorShape> =>
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
    return {
      complete,
      baseUrl: config.baseUrl,
      probe: (options) => probeHttpExecutor(config, options),
    };
  });

export const HttpExecutor = {
  /** An `Executor` layer over an OpenAI-compatible server; fails with `ConfigError` on a bad config. */
  layer: (config: HttpExecutorConfig = {}): Layer.Layer<Executor, ConfigError> =>
    Layer.effect(Executor, Effect.flatMap(resolveHttpExecutorConfig(config), makeHttpExecutor)),
  make: (config: HttpExecutorConfig = {}): Effect.Effect<HttpExecutorShape, ConfigError> =>
    Effect.flatMap(resolveHttpExecutorConfig(config), makeHttpExecutor),
  /** Resolve the config and run the start-up check once (see {@link HttpExecutorShape.probe}). */
  check: (config: HttpExecutorConfig = {}): Effect.Effect<void, ConfigError | ExecutorUnreachableError> =>
    Effect.flatMap(resolveHttpExecutorConfig(config), (resolved) => probeHttpExecutor(resolved)),
} as const;
