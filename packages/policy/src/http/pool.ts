/**
 * A fleet of llama-server instances: health checks (`GET /health`), server selection
 * (round-robin or least-busy), per-server slot bookkeeping for KV-cache reuse, and single
 * JSON requests with a timeout. Retries live in the policy, which knows what is safe to repeat.
 */
import { LlamaServerHttpError, LlamaServerUnavailableError } from "./errors.js";

export type BalanceStrategy = "round-robin" | "least-busy";

export interface PoolOptions {
  readonly urls: ReadonlyArray<string>;
  readonly strategy: BalanceStrategy;
  /** Per-request timeout for `/completion` and friends. */
  readonly requestTimeoutMs: number;
  /** Timeout of one `GET /health` (and `GET /props`) call. */
  readonly healthTimeoutMs: number;
  /** How long a server marked unhealthy is left alone before its health is checked again. */
  readonly unhealthyCooldownMs: number;
}

export interface ServerState {
  readonly url: string;
  healthy: boolean;
  /** Why the server was last marked unhealthy. */
  lastError: string | undefined;
  /** When an unhealthy server may be checked again (ms since epoch). */
  retryAt: number;
  /** Requests in flight on this server. */
  inFlight: number;
  /** Sequences bound to this server. */
  bound: number;
  /** Parallel slots (`total_slots` from `/props`); 0 until known. */
  slots: number;
  /** Context size of one slot (`n_ctx` of the default generation settings). */
  slotContext: number;
  /** Slot ids not bound to a sequence. */
  freeSlots: number[];
  /**
   * Adapter scales set by `reload`, sent with every completion: the server clears a slot's KV cache
   * only when a request's own `lora` differs from the slot's (a global `POST /lora-adapters` alone
   * would leave prefixes computed under the old adapter in the cache).
   */
  lora: ReadonlyArray<{ readonly id: number; readonly scale: number }> | undefined;
}

export interface SlotBinding {
  readonly server: ServerState;
  /** The server slot the sequence sticks to, or -1 when every slot is taken (server picks). */
  readonly slot: number;
}

const trimUrl = (url: string): string => url.replace(/\/+$/, "");

const describe = (error: unknown): string => {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    return cause instanceof Error ? `${error.message} (${cause.message})` : error.message;
  }
  return String(error);
};

export class LlamaServerPool {
  readonly servers: ReadonlyArray<ServerState>;
  private cursor = 0;

  constructor(readonly options: PoolOptions) {
    if (options.urls.length === 0) throw new Error("HttpPolicy: `urls` must name at least one llama-server");
    this.servers = options.urls.map((url) => ({
      url: trimUrl(url),
      healthy: false,
      lastError: "not checked yet",
      retryAt: 0,
      inFlight: 0,
      bound: 0,
      slots: 0,
      slotContext: 0,
      freeSlots: [],
      lora: undefined,
    }));
  }

  /** One HTTP exchange with a JSON body (or none) and a timeout; throws LlamaServerHttpError. */
  async request<T>(
    server: ServerState,
    method: "GET" | "POST",
    path: string,
    body: unknown,
    timeoutMs: number = this.options.requestTimeoutMs,
    /** The caller's interruption: aborts the request (llama-server then stops generating). */
    signal?: AbortSignal,
  ): Promise<T> {
    const endpoint = `${method} ${path}`;
    const fail = (
      reason: LlamaServerHttpError["reason"],
      message: string,
      status?: number,
    ): LlamaServerHttpError =>
      new LlamaServerHttpError({
        message: `${server.url} ${endpoint}: ${message}`,
        url: server.url,
        endpoint,
        reason,
        attempts: 1,
        ...(status === undefined ? {} : { status }),
      });
    server.inFlight++;
    try {
      let response: Response;
      try {
        response = await fetch(`${server.url}${path}`, {
          method,
          signal: signal
            ? AbortSignal.any([AbortSignal.timeout(timeoutMs), signal])
            : AbortSignal.timeout(timeoutMs),
          ...(body === undefined
            ? {}
            : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
        });
      } catch (error) {
        const timedOut =
          error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
        throw timedOut
          ? fail("timeout", `no answer within ${timeoutMs} ms`)
          : fail("network", `request failed: ${describe(error)}`);
      }
      let text: string;
      try {
        text = await response.text();
      } catch (error) {
        const timedOut =
          error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
        throw timedOut
          ? fail("timeout", `no complete body within ${timeoutMs} ms`)
          : fail("body", `reading the body failed: ${describe(error)}`, response.status);
      }
      if (!response.ok) {
        let detail = text.slice(0, 500);
        let extra: Partial<Pick<LlamaServerHttpError, "serverErrorType" | "promptTokens" | "slotContext">> =
          {};
        try {
          const parsed = JSON.parse(text) as {
            error?: { message?: string; type?: string; n_prompt_tokens?: number; n_ctx?: number };
          };
          if (parsed.error?.message) detail = parsed.error.message;
          extra = {
            ...(parsed.error?.type === undefined ? {} : { serverErrorType: parsed.error.type }),
            ...(parsed.error?.n_prompt_tokens === undefined
              ? {}
              : { promptTokens: parsed.error.n_prompt_tokens }),
            ...(parsed.error?.n_ctx === undefined ? {} : { slotContext: parsed.error.n_ctx }),
          };
        } catch {
          // not JSON: keep the raw text
        }
        throw new LlamaServerHttpError({
          ...extra,
          message: `${server.url} ${endpoint}: HTTP ${response.status}: ${detail}`,
          url: server.url,
          endpoint,
          reason: "status",
          status: response.status,
          attempts: 1,
        });
      }
      try {
        return JSON.parse(text) as T;
      } catch {
        throw fail(
          "body",
          `expected a JSON body, got ${JSON.stringify(text.slice(0, 200))}`,
          response.status,
        );
      }
    } finally {
      server.inFlight--;
    }
  }

  /** `GET /health`, then `GET /props` the first time: marks the server healthy or not. */
  async check(server: ServerState): Promise<boolean> {
    try {
      await this.request<{ status?: string }>(
        server,
        "GET",
        "/health",
        undefined,
        this.options.healthTimeoutMs,
      );
      if (server.slots === 0) {
        const props = await this.request<{
          total_slots?: number;
          default_generation_settings?: { n_ctx?: number };
        }>(server, "GET", "/props", undefined, this.options.healthTimeoutMs);
        const slots = props.total_slots ?? 1;
        server.slots = slots;
        server.slotContext = props.default_generation_settings?.n_ctx ?? 0;
        server.freeSlots = Array.from({ length: slots }, (_, i) => slots - 1 - i);
      }
      server.healthy = true;
      server.lastError = undefined;
      return true;
    } catch (error) {
      this.markUnhealthy(server, error instanceof LlamaServerHttpError ? error.message : describe(error));
      return false;
    }
  }

  markUnhealthy(server: ServerState, reason: string): void {
    server.healthy = false;
    server.lastError = reason;
    server.retryAt = Date.now() + this.options.unhealthyCooldownMs;
  }

  /** Check every server whose cooldown is over; fail when none is healthy afterwards. */
  async ensureHealthy(force = false): Promise<ReadonlyArray<ServerState>> {
    const now = Date.now();
    await Promise.all(
      this.servers.filter((s) => !s.healthy && (force || s.retryAt <= now)).map((s) => this.check(s)),
    );
    const healthy = this.servers.filter((s) => s.healthy);
    if (healthy.length === 0) {
      // Every cooldown still running: one forced round before giving up.
      if (!force) return this.ensureHealthy(true);
      throw new LlamaServerUnavailableError({
        message: `no healthy llama-server: ${this.servers.map((s) => `${s.url} (${s.lastError ?? "unknown"})`).join(", ")}`,
        servers: this.servers.map((s) => ({ url: s.url, reason: s.lastError ?? "unknown" })),
      });
    }
    return healthy;
  }

  /** Pick a healthy server and a free slot on it for a new (or moved) sequence. */
  async bind(exclude?: ServerState): Promise<SlotBinding> {
    const healthy = await this.ensureHealthy();
    const candidates =
      healthy.length > 1 && exclude !== undefined ? healthy.filter((s) => s !== exclude) : healthy;
    let server: ServerState;
    if (this.options.strategy === "least-busy") {
      // Fewest bound sequences (then fewest requests in flight); ties go round-robin.
      const start = this.cursor++;
      server = candidates
        .map((s, i) => ({ s, order: (i - start + candidates.length * 1_000_000) % candidates.length }))
        .sort((a, b) => a.s.bound - b.s.bound || a.s.inFlight - b.s.inFlight || a.order - b.order)[0]!.s;
    } else {
      server = candidates[this.cursor++ % candidates.length]!;
    }
    server.bound++;
    const slot = server.freeSlots.pop() ?? -1;
    return { server, slot };
  }

  release(binding: SlotBinding): void {
    binding.server.bound--;
    if (binding.slot >= 0) binding.server.freeSlots.push(binding.slot);
  }
}
