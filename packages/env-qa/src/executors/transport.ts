/**
 * One JSON POST with a per-attempt timeout, bounded retries (exponential backoff with jitter,
 * Retry-After honoured) on 429 / 5xx / network errors / timeouts, and a failure description that
 * callers map to their own typed error. Shared by the HTTP executor and the HTTP retriever.
 */
import { Data, Duration, Effect, Redacted, Schedule } from "effect";

export interface RetryPolicy {
  /** Per-attempt time limit in milliseconds. */
  readonly timeoutMs: number;
  /** Extra attempts after the first one fails with a retryable error. */
  readonly maxRetries: number;
  /** First backoff delay; doubles on each retry (±20% jitter). */
  readonly baseDelayMs: number;
  /** Upper bound on one backoff delay, Retry-After included. */
  readonly maxDelayMs: number;
}

/** Why one attempt failed. Internal: callers get `PostFailure` once retries are spent. */
export class AttemptError extends Data.TaggedError("AttemptError")<{
  readonly kind: "timeout" | "status" | "network" | "body";
  readonly message: string;
  readonly status?: number;
  readonly retryAfterMs?: number;
}> {}

/** The final failure of a POST after every attempt. */
export interface PostFailure {
  readonly kind: "timeout" | "status" | "network" | "body";
  readonly message: string;
  readonly status?: number;
  readonly attempts: number;
}

export const isRetryable = (e: AttemptError): boolean =>
  e.kind === "timeout" ||
  e.kind === "network" ||
  (e.kind === "status" &&
    e.status !== undefined &&
    (e.status === 429 || (e.status >= 500 && e.status !== 501)));

/** Parse Retry-After (delta-seconds or an HTTP date) into milliseconds. */
export const parseRetryAfter = (value: string | null, now: number = Date.now()): number | undefined => {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
};

/** Replace every occurrence of the secret in a string (server bodies may echo headers back). */
export const scrub = (text: string, secret: Redacted.Redacted<string> | undefined): string => {
  if (secret === undefined) return text;
  const raw = Redacted.value(secret);
  return raw.length === 0 ? text : text.split(raw).join("[redacted]");
};

/**
 * At most 200 characters of a server body for an error message, with `<`/`>` turned into `‹`/`›`:
 * operator errors become observations in the agent's transcript, where a half-quoted HTML error
 * page would open tags the agent never wrote (and cost it the format reward).
 */
export const excerpt = (body: string): string => {
  const short = body.length > 200 ? `${body.slice(0, 200)}…` : body;
  return short.replace(/</g, "‹").replace(/>/g, "›");
};

/**
 * The retry schedule: exponential from `baseDelayMs`, jittered, at least the server's Retry-After,
 * at most `maxDelayMs`.
 */
export const retrySchedule = (policy: RetryPolicy) =>
  Schedule.exponential(Duration.millis(policy.baseDelayMs)).pipe(
    Schedule.jittered,
    Schedule.modifyDelay(({ input, duration }) => {
      const retryAfter = input instanceof AttemptError ? input.retryAfterMs : undefined;
      const ms = Math.max(Duration.toMillis(duration), retryAfter ?? 0);
      return Effect.succeed(Duration.millis(Math.min(ms, policy.maxDelayMs)));
    }),
  );

export interface PostJsonOptions {
  readonly url: string;
  readonly body: unknown;
  readonly headers?: Readonly<Record<string, string>>;
  readonly apiKey?: Redacted.Redacted<string>;
  readonly policy: RetryPolicy;
}

/** The parsed (not yet validated) JSON answer and the attempts it took. */
export interface PostResult {
  readonly json: unknown;
  readonly attempts: number;
}

/** POST `body` as JSON and return the parsed JSON response (not yet validated). */
export const postJson = (options: PostJsonOptions): Effect.Effect<PostResult, PostFailure> =>
  // Suspended so that every run counts its own attempts.
  Effect.suspend(() => postJsonOnce(options));

/** What one HTTP exchange returned (any status). */
export interface RawAnswer {
  readonly status: number;
  readonly retryAfter: string | null;
  readonly text: string;
}

export interface RequestOnceOptions {
  readonly url: string;
  readonly method: "GET" | "POST";
  /** Sent as is (already JSON for a POST). */
  readonly body?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly apiKey?: Redacted.Redacted<string>;
  readonly timeoutMs: number;
}

/**
 * One HTTP exchange with a time limit and no retries: the answer whatever its status, or an
 * `AttemptError` of kind "network" or "timeout". The API key never reaches an error message.
 */
export const requestOnce = (options: RequestOnceOptions): Effect.Effect<RawAnswer, AttemptError> => {
  const { url, apiKey } = options;
  const headers: Record<string, string> =
    options.body === undefined
      ? { ...options.headers }
      : { "content-type": "application/json", ...options.headers };
  if (apiKey !== undefined) headers.authorization = `Bearer ${Redacted.value(apiKey)}`;
  // The signal aborts the request when the timeout (or the caller) interrupts the fiber.
  return Effect.tryPromise({
    try: async (signal) => {
      const res = await fetch(url, {
        method: options.method,
        headers,
        ...(options.body === undefined ? {} : { body: options.body }),
        signal,
      });
      return { status: res.status, retryAfter: res.headers.get("retry-after"), text: await res.text() };
    },
    catch: (cause) =>
      new AttemptError({
        kind: "network",
        message: scrub(
          `network error: ${cause instanceof Error ? describeCause(cause) : String(cause)}`,
          apiKey,
        ),
      }),
  }).pipe(
    Effect.timeoutOrElse({
      duration: Duration.millis(options.timeoutMs),
      orElse: () =>
        Effect.fail(
          new AttemptError({ kind: "timeout", message: `no answer within ${options.timeoutMs} ms` }),
        ),
    }),
  );
};

/** The `AttemptError` of kind "status" for a non-2xx answer (with its Retry-After). */
export const statusError = (answer: RawAnswer, apiKey?: Redacted.Redacted<string>): AttemptError => {
  const retryAfterMs = parseRetryAfter(answer.retryAfter);
  return new AttemptError({
    kind: "status",
    status: answer.status,
    message: scrub(`HTTP ${answer.status}: ${excerpt(answer.text)}`, apiKey),
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  });
};

/** A non-2xx answer fails with {@link statusError}; a 2xx one passes through. */
export const checkStatus = (
  answer: RawAnswer,
  apiKey?: Redacted.Redacted<string>,
): Effect.Effect<RawAnswer, AttemptError> =>
  answer.status >= 200 && answer.status < 300
    ? Effect.succeed(answer)
    : Effect.fail(statusError(answer, apiKey));

/** Parse a 2xx body as JSON, or fail with an `AttemptError` of kind "body". */
export const parseJsonBody = (
  answer: RawAnswer,
  apiKey?: Redacted.Redacted<string>,
): Effect.Effect<unknown, AttemptError> =>
  Effect.try({
    try: () => JSON.parse(answer.text) as unknown,
    catch: () =>
      new AttemptError({
        kind: "body",
        message: scrub(`response is not JSON: ${excerpt(answer.text)}`, apiKey),
      }),
  });

const postJsonOnce = (options: PostJsonOptions): Effect.Effect<PostResult, PostFailure> => {
  const { url, policy, apiKey } = options;
  const payload = JSON.stringify(options.body);
  let attempts = 0;

  const attempt = Effect.suspend(() => {
    attempts++;
    return requestOnce({
      url,
      method: "POST",
      body: payload,
      ...(options.headers === undefined ? {} : { headers: options.headers }),
      ...(apiKey === undefined ? {} : { apiKey }),
      timeoutMs: policy.timeoutMs,
    }).pipe(
      Effect.flatMap((answer) => checkStatus(answer, apiKey)),
      Effect.flatMap((answer) => parseJsonBody(answer, apiKey)),
    );
  });

  return attempt.pipe(
    Effect.retry({ schedule: retrySchedule(policy), times: policy.maxRetries, while: isRetryable }),
    Effect.mapError(
      (e): PostFailure => ({
        kind: e.kind,
        message: e.message,
        attempts,
        ...(e.status === undefined ? {} : { status: e.status }),
      }),
    ),
    Effect.map((json): PostResult => ({ json, attempts })),
  );
};

/** undici wraps the real reason (ECONNREFUSED, …) in `cause`. */
const describeCause = (error: Error): string => {
  const inner = (error as { cause?: unknown }).cause;
  if (inner instanceof Error) return `${error.message} (${inner.message})`;
  return error.message;
};
