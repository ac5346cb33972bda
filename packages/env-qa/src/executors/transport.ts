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
const excerpt = (body: string): string => {
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

const postJsonOnce = (options: PostJsonOptions): Effect.Effect<PostResult, PostFailure> => {
  const { url, policy, apiKey } = options;
  const payload = JSON.stringify(options.body);
  let attempts = 0;

  const attempt = Effect.gen(function* () {
    attempts++;
    const headers: Record<string, string> = { "content-type": "application/json", ...options.headers };
    if (apiKey !== undefined) headers.authorization = `Bearer ${Redacted.value(apiKey)}`;
    // The signal aborts the request when the timeout (or the caller) interrupts the fiber.
    const response = yield* Effect.tryPromise({
      try: async (signal) => {
        const res = await fetch(url, { method: "POST", headers, body: payload, signal });
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
        duration: Duration.millis(policy.timeoutMs),
        orElse: () =>
          Effect.fail(
            new AttemptError({ kind: "timeout", message: `no answer within ${policy.timeoutMs} ms` }),
          ),
      }),
    );
    if (response.status < 200 || response.status >= 300) {
      const retryAfterMs = parseRetryAfter(response.retryAfter);
      return yield* new AttemptError({
        kind: "status",
        status: response.status,
        message: scrub(`HTTP ${response.status}: ${excerpt(response.text)}`, apiKey),
        ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      });
    }
    try {
      return JSON.parse(response.text) as unknown;
    } catch {
      return yield* new AttemptError({
        kind: "body",
        message: scrub(`response is not JSON: ${excerpt(response.text)}`, apiKey),
      });
    }
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
