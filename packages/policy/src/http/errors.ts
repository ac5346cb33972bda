import { Data } from "effect";

/**
 * Why a llama-server request failed: carried as the `cause` of the core `PolicyError` (or
 * `ModelLoadError`) so callers can tell a dead server from a bad request.
 */
export class LlamaServerHttpError extends Data.TaggedError("LlamaServerHttpError")<{
  readonly message: string;
  /** The server's base URL (e.g. `http://127.0.0.1:8080`). */
  readonly url: string;
  /** The endpoint that failed, e.g. `POST /completion`. */
  readonly endpoint: string;
  /** HTTP status; undefined for network errors, timeouts and unreadable bodies. */
  readonly status?: number;
  /** How many attempts were made before giving up. */
  readonly attempts: number;
  readonly reason: "network" | "timeout" | "status" | "body" | "unhealthy";
  /** The server's `error.type`, e.g. `exceed_context_size_error`, when it sent one. */
  readonly serverErrorType?: string;
  /** For `exceed_context_size_error`: the prompt's tokens and the slot's context. */
  readonly promptTokens?: number;
  readonly slotContext?: number;
}> {}

/** Every configured server failed its `GET /health` check. */
export class LlamaServerUnavailableError extends Data.TaggedError("LlamaServerUnavailableError")<{
  readonly message: string;
  /** One entry per configured URL: what its last health check answered. */
  readonly servers: ReadonlyArray<{ readonly url: string; readonly reason: string }>;
}> {}

/** The operation exists in the Policy contract but llama-server's HTTP API cannot do it. */
export class LlamaServerUnsupportedError extends Data.TaggedError("LlamaServerUnsupportedError")<{
  readonly message: string;
  readonly operation: string;
}> {}
