/**
 * HttpPolicy: the core `Policy` over a fleet of llama.cpp `llama-server` instances.
 *
 * - Sampling: `POST /completion` with the sequence's whole token array as the prompt,
 *   `cache_prompt: true` and a sticky `id_slot`, so the server re-evaluates only the new suffix.
 * - Logprobs: `n_probs: 1` with `post_sampling_probs: false` makes the server report, per sampled
 *   token, `logprob` = log softmax(raw logits) of that token: temperature 1, no truncation, which is
 *   what the learner trains on (server source: `populate_token_probs` → `get_token_probabilities`).
 *   The server leaves out the entries of tokens that end inside a UTF-8 character and of the stop
 *   string's tokens; those positions are filled by probes (see `probeLogprobs`).
 * - Fleet: round-robin or least-busy choice of server per sequence, retries with exponential
 *   backoff, unhealthy servers skipped until a later `GET /health` succeeds, and a sequence whose
 *   server died moves to another one (its whole token array is sent again, so nothing is lost).
 */

import { resolve } from "node:path";
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
import { Duration, Effect, Layer, Schedule, type Scope } from "effect";
import { weightsLabel } from "../weights-label.js";
import { LlamaServerHttpError, LlamaServerUnavailableError, LlamaServerUnsupportedError } from "./errors.js";
import { type BalanceStrategy, LlamaServerPool, type ServerState, type SlotBinding } from "./pool.js";
import { type LocalTokenizer, loadLocalTokenizer } from "./tokenizer.js";

export interface HttpPolicyOptions {
  /** Base URLs of the llama-server instances, e.g. `["http://10.0.0.5:8080"]`. */
  readonly urls: ReadonlyArray<string>;
  /** The GGUF the servers run (read locally for the tokenizer and chat template only). */
  readonly tokenizerModelPath: string;
  /** How a new sequence picks its server. Default `least-busy`. */
  readonly strategy?: BalanceStrategy;
  /** Timeout of one completion request. Default 300 000 ms. */
  readonly requestTimeoutMs?: number;
  /** Timeout of one `GET /health`. Default 2 000 ms. */
  readonly healthTimeoutMs?: number;
  /** Extra attempts after a failed request (network error, timeout, 5xx). Default 3. */
  readonly retries?: number;
  /** First backoff delay; doubles per attempt, capped at 5 s. Default 100 ms. */
  readonly backoffMs?: number;
  /** How long an unhealthy server is skipped before it is checked again. Default 5 000 ms. */
  readonly unhealthyCooldownMs?: number;
  /**
   * `score` and logprob probes ask the server for the whole next-token distribution
   * (`n_probs` = vocabulary size) at each position; `score` refuses when positions × vocabulary
   * exceeds this many entries. Default 4 000 000.
   */
  readonly scoreProbeLimit?: number;
}

/** What the server reported for the last `generate` of a sequence. */
export interface CompletionStats {
  readonly url: string;
  readonly slot: number;
  /** Prompt tokens sent (`tokens_evaluated`). */
  readonly promptTokens: number;
  /** Prompt tokens the server actually evaluated (`timings.prompt_n`). */
  readonly promptEvaluated: number;
  /** Prompt tokens reused from the slot's KV cache (`timings.cache_n`). */
  readonly promptCached: number;
  /** Positions whose logprob needed a probe request. */
  readonly probes: number;
  /** Attempts the request took (1 = no retry). */
  readonly attempts: number;
}

export interface HttpPolicySequence extends PolicySequence {
  /** The server and slot the sequence is bound to now. */
  readonly binding: () => { readonly url: string; readonly slot: number } | undefined;
  readonly lastStats: () => CompletionStats | undefined;
}

export interface ServerStatus {
  readonly url: string;
  readonly healthy: boolean;
  readonly lastError: string | undefined;
  readonly slots: number;
  readonly slotContext: number;
  readonly boundSequences: number;
  readonly inFlight: number;
}

export interface HttpPolicyShape extends PolicyShape {
  readonly openSequence: (
    prompt: Int32Array,
  ) => Effect.Effect<HttpPolicySequence, PolicyError | ContextOverflowError, Scope.Scope>;
  readonly servers: () => ReadonlyArray<ServerStatus>;
  /** `GET /health` on every server now; fails when none answers. */
  readonly checkHealth: () => Effect.Effect<ReadonlyArray<ServerStatus>, PolicyError>;
}

interface ProbEntry {
  readonly id: number;
  readonly logprob: number;
  readonly top_logprobs?: ReadonlyArray<{ readonly id: number; readonly logprob: number }>;
}

interface CompletionResponse {
  readonly tokens?: ReadonlyArray<number>;
  readonly stop_type?: "eos" | "word" | "limit" | "none";
  readonly stopping_word?: string;
  readonly tokens_evaluated?: number;
  readonly id_slot?: number;
  readonly timings?: { readonly prompt_n?: number; readonly cache_n?: number };
  readonly completion_probabilities?: ReadonlyArray<ProbEntry>;
}

/** How many of the most likely tokens a logprob probe asks for before asking for all of them. */
const PROBE_TOP_N = 64;

/** Whether `bytes` ends inside a multi-byte UTF-8 character: llama-server's `validate_utf8` test. */
export const endsInsideUtf8Char = (bytes: ReadonlyArray<number>): boolean => {
  const len = bytes.length;
  for (let i = 1; i <= 4 && i <= len; i++) {
    const c = bytes[len - i]!;
    if ((c & 0xe0) === 0xc0 && i < 2) return true;
    if ((c & 0xf0) === 0xe0 && i < 3) return true;
    if ((c & 0xf8) === 0xf0 && i < 4) return true;
  }
  return false;
};

const toPolicyError = (operation: string, error: unknown): PolicyError | ContextOverflowError => {
  if (error instanceof ContextOverflowError || error instanceof PolicyError) return error;
  if (error instanceof LlamaServerHttpError && error.serverErrorType === "exceed_context_size_error") {
    return new ContextOverflowError({
      message: `HttpPolicy.${operation}: ${error.message}`,
      needed: error.promptTokens ?? Number.NaN,
      contextSize: error.slotContext ?? Number.NaN,
    });
  }
  if (error instanceof LlamaServerHttpError || error instanceof LlamaServerUnavailableError) {
    return new PolicyError({ message: `HttpPolicy.${operation}: ${error.message}`, cause: error });
  }
  if (error instanceof LlamaServerUnsupportedError) {
    return new PolicyError({ message: error.message, cause: error });
  }
  return new PolicyError({
    message: `HttpPolicy.${operation}: ${error instanceof Error ? error.message : String(error)}`,
    cause: error,
  });
};

/** Copy an HTTP error with the attempt count (Error fields are not enumerable, so no spread). */
const withAttempts = (error: LlamaServerHttpError, message: string, attempts: number): LlamaServerHttpError =>
  new LlamaServerHttpError({
    message,
    url: error.url,
    endpoint: error.endpoint,
    reason: error.reason,
    attempts,
    ...(error.status === undefined ? {} : { status: error.status }),
    ...(error.serverErrorType === undefined ? {} : { serverErrorType: error.serverErrorType }),
    ...(error.promptTokens === undefined ? {} : { promptTokens: error.promptTokens }),
    ...(error.slotContext === undefined ? {} : { slotContext: error.slotContext }),
  });

/** A sequence's hold on a server slot; moves to another server when its server fails. */
class Holder {
  binding: SlotBinding | undefined;
  constructor(private readonly pool: LlamaServerPool) {}
  async get(): Promise<SlotBinding> {
    if (this.binding === undefined || !this.binding.server.healthy) {
      const old = this.binding;
      if (old !== undefined) this.pool.release(old);
      this.binding = undefined;
      this.binding = await this.pool.bind(old?.server);
    }
    return this.binding;
  }
  drop(): void {
    if (this.binding !== undefined) this.pool.release(this.binding);
    this.binding = undefined;
  }
}

const make = (options: HttpPolicyOptions): Effect.Effect<HttpPolicyShape, PolicyError, Scope.Scope> =>
  Effect.gen(function* () {
    const retries = options.retries ?? 3;
    const backoffMs = options.backoffMs ?? 100;
    const scoreProbeLimit = options.scoreProbeLimit ?? 4_000_000;
    const pool = yield* Effect.try({
      try: () =>
        new LlamaServerPool({
          urls: options.urls,
          strategy: options.strategy ?? "least-busy",
          requestTimeoutMs: options.requestTimeoutMs ?? 300_000,
          healthTimeoutMs: options.healthTimeoutMs ?? 2_000,
          unhealthyCooldownMs: options.unhealthyCooldownMs ?? 5_000,
        }),
      catch: (e) => toPolicyError("layer", e) as PolicyError,
    });

    const tokenizer: LocalTokenizer = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => loadLocalTokenizer(options.tokenizerModelPath),
        catch: (e) =>
          new PolicyError({
            message: `HttpPolicy: cannot load the tokenizer from ${options.tokenizerModelPath}: ${e instanceof Error ? e.message : String(e)}`,
            cause: e,
          }),
      }),
      (t) => Effect.promise(() => t.dispose()),
    );

    // Every server must run the model whose vocabulary we tokenize with.
    const healthy = yield* Effect.tryPromise({
      try: () => pool.ensureHealthy(true),
      catch: (e) => toPolicyError("layer", e) as PolicyError,
    });
    for (const server of healthy) {
      const models = yield* Effect.tryPromise({
        try: () =>
          pool.request<{ data?: ReadonlyArray<{ meta?: { n_vocab?: number } }> }>(
            server,
            "GET",
            "/v1/models",
            undefined,
          ),
        catch: (e) => toPolicyError("layer", e) as PolicyError,
      });
      const nVocab = models.data?.[0]?.meta?.n_vocab;
      if (nVocab !== undefined && nVocab !== tokenizer.vocabularySize) {
        return yield* new PolicyError({
          message: `HttpPolicy: ${server.url} serves a model with ${nVocab} tokens but tokenizerModelPath ${options.tokenizerModelPath} has ${tokenizer.vocabularySize}`,
        });
      }
    }
    const contextSize = Math.min(...healthy.map((s) => s.slotContext || tokenizer.trainContextSize));

    /** A failure worth another attempt: a network error, a timeout, 408, 429 or a 5xx other than 501. */
    const retryable = (error: unknown): error is LlamaServerHttpError => {
      if (!(error instanceof LlamaServerHttpError)) return false;
      const status = error.status;
      return !(
        status !== undefined &&
        ((status >= 400 && status < 500 && status !== 408 && status !== 429) || status === 501)
      );
    };
    // Exponential backoff from `backoffMs`, capped at 5 s: Effect's Schedule, as the executor transport.
    const retrySchedule = Schedule.exponential(Duration.millis(backoffMs)).pipe(
      Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.seconds(5)))),
    );

    /**
     * Run `op` on the holder's server; a retryable failure marks the server unhealthy (503 and 429
     * keep it: loading or overloaded), moves the sequence to another server after the backoff and
     * tries again, up to `retries` more times. Interrupting the Effect aborts the request in flight.
     */
    const withRetries = <T>(holder: Holder, op: (binding: SlotBinding, signal: AbortSignal) => Promise<T>) =>
      Effect.suspend(() => {
        let attempts = 0;
        const attempt = Effect.gen(function* () {
          attempts++;
          const binding = yield* Effect.tryPromise({ try: () => holder.get(), catch: (e) => e });
          return yield* Effect.tryPromise({ try: (signal) => op(binding, signal), catch: (e) => e }).pipe(
            Effect.tapError((error) =>
              Effect.sync(() => {
                if (retryable(error) && error.status !== 503 && error.status !== 429) {
                  pool.markUnhealthy(binding.server, error.message);
                  holder.drop();
                }
              }),
            ),
          );
        });
        return attempt.pipe(
          Effect.retry({ schedule: retrySchedule, times: retries, while: retryable }),
          Effect.map((value) => ({ value, attempts })),
          Effect.mapError((error) =>
            retryable(error)
              ? withAttempts(error, `${error.message} (gave up after ${attempts} attempts)`, attempts)
              : error instanceof LlamaServerHttpError
                ? withAttempts(error, error.message, attempts)
                : error,
          ),
        );
      });

    const checkContext = (needed: number, server: ServerState | undefined) => {
      const size = server?.slotContext || contextSize;
      if (needed > size) {
        throw new ContextOverflowError({
          message: `HttpPolicy: ${needed} tokens do not fit the server slot's context of ${size} tokens${server ? ` (${server.url})` : ""}`,
          needed,
          contextSize: size,
        });
      }
    };

    /**
     * log p(targets[j] | prefix ++ targets[<j]) for the given positions j, one request each:
     * the prompt is the prefix, `n_probs` is the vocabulary size (the whole raw distribution), and
     * a logit bias forces the sampled token to a plain ASCII letter so the server never leaves the
     * entry out (it drops entries of tokens that end inside a UTF-8 character).
     */
    const probeLogprobs = async (
      binding: SlotBinding,
      prefix: ReadonlyArray<number>,
      targets: ReadonlyArray<number>,
      positions: ReadonlyArray<number>,
      signal: AbortSignal,
    ): Promise<Map<number, number>> => {
      const out = new Map<number, number>();
      const ask = async (prompt: ReadonlyArray<number>, nProbs: number) => {
        const response = await pool.request<CompletionResponse>(
          binding.server,
          "POST",
          "/completion",
          {
            prompt,
            n_predict: 1,
            n_probs: nProbs,
            post_sampling_probs: false,
            cache_prompt: true,
            id_slot: binding.slot,
            return_tokens: true,
            logit_bias: [[tokenizer.asciiToken, 1e4]],
            samplers: ["temperature"],
            temperature: 1,
            ...(binding.server.lora === undefined ? {} : { lora: binding.server.lora }),
          },
          undefined,
          signal,
        );
        return response.completion_probabilities?.[0]?.top_logprobs ?? [];
      };
      for (const j of positions) {
        const prompt = [...prefix, ...targets.slice(0, j)];
        // A sampled (or teacher-forced) token is nearly always among the most likely ones: ask for
        // the top PROBE_TOP_N first and for the whole vocabulary only when it is not there.
        let hit = (await ask(prompt, Math.min(PROBE_TOP_N, tokenizer.vocabularySize))).find(
          (e) => e.id === targets[j],
        );
        if (hit === undefined && PROBE_TOP_N < tokenizer.vocabularySize) {
          hit = (await ask(prompt, tokenizer.vocabularySize)).find((e) => e.id === targets[j]);
        }
        if (hit === undefined) {
          throw new PolicyError({
            message: `HttpPolicy: probe at position ${prefix.length + j} on ${binding.server.url} returned no probability for token ${targets[j]}`,
          });
        }
        out.set(j, hit.logprob);
      }
      return out;
    };

    /** Per sampled token, its logprob: from the response where the server reported it, else probed. */
    const logprobsFor = async (
      binding: SlotBinding,
      prompt: ReadonlyArray<number>,
      response: CompletionResponse,
      sampled: ReadonlyArray<number>,
      signal: AbortSignal,
    ): Promise<{ logprobs: Float32Array; probes: number }> => {
      const entries = response.completion_probabilities ?? [];
      const logprobs = new Float32Array(sampled.length);
      if (entries.length === sampled.length && entries.every((e, i) => e.id === sampled[i])) {
        entries.forEach((e, i) => {
          logprobs[i] = e.logprob;
        });
        return { logprobs, probes: 0 };
      }
      // Replay the server's bookkeeping: an entry exists for each token after which the text does
      // not end inside a UTF-8 character, minus the stop string's tokens at the end.
      const pieces = await pool.request<{ tokens: ReadonlyArray<{ id: number; piece: string | number[] }> }>(
        binding.server,
        "POST",
        "/tokenize",
        { content: sampled, with_pieces: true },
        undefined,
        signal,
      );
      const encoder = new TextEncoder();
      const bytes: number[] = [];
      let present: number[] = [];
      pieces.tokens.forEach((t, i) => {
        for (const b of typeof t.piece === "string" ? encoder.encode(t.piece) : t.piece) bytes.push(b);
        if (!endsInsideUtf8Char(bytes)) present.push(i);
      });
      if (response.stop_type === "word" && response.stopping_word) {
        const stopTokens = await pool.request<{ tokens: ReadonlyArray<number> }>(
          binding.server,
          "POST",
          "/tokenize",
          {
            content: response.stopping_word,
            add_special: false,
            parse_special: false,
          },
          undefined,
          signal,
        );
        present = present.slice(0, Math.max(0, present.length - stopTokens.tokens.length));
      }
      const known = new Set<number>();
      entries.forEach((e, k) => {
        const position = present[k];
        if (position !== undefined && sampled[position] === e.id) {
          logprobs[position] = e.logprob;
          known.add(position);
        }
      });
      const missing = sampled.map((_, i) => i).filter((i) => !known.has(i));
      const probed = await probeLogprobs(binding, prompt, sampled, missing, signal);
      for (const [i, lp] of probed) logprobs[i] = lp;
      return { logprobs, probes: missing.length };
    };

    const info = (): PolicyInfo => ({
      modelPath: options.tokenizerModelPath,
      contextSize,
      vocabularySize: tokenizer.vocabularySize,
      ...tokenizer.chat,
    });

    const openSequence = (
      prompt: Int32Array,
    ): Effect.Effect<HttpPolicySequence, PolicyError | ContextOverflowError, Scope.Scope> =>
      Effect.acquireRelease(
        Effect.tryPromise({
          try: async () => {
            const holder = new Holder(pool);
            await holder.get();
            // Room for the prompt and at least one sampled token.
            checkContext(prompt.length + 1, holder.binding?.server);
            return holder;
          },
          catch: (e) => toPolicyError("openSequence", e),
        }),
        (holder) => Effect.sync(() => holder.drop()),
      ).pipe(
        Effect.map((holder): HttpPolicySequence => {
          let tokens = Int32Array.from(prompt);
          let stats: CompletionStats | undefined;
          const generate = (
            append: Int32Array,
            sampling: SamplingOptions,
          ): Effect.Effect<Generation, PolicyError | ContextOverflowError> =>
            Effect.gen(function* () {
              const promptTokens = Array.from(tokens).concat(Array.from(append));
              if (promptTokens.length === 0)
                return yield* new PolicyError({ message: "HttpPolicy.generate: the sequence is empty" });
              if (!Number.isInteger(sampling.maxTokens) || sampling.maxTokens < 0) {
                return yield* new PolicyError({
                  message: `HttpPolicy.generate: maxTokens must be a non-negative integer, got ${sampling.maxTokens}`,
                });
              }
              yield* Effect.try({
                try: () => checkContext(promptTokens.length + 1, holder.binding?.server),
                catch: (e) => e,
              });
              if (sampling.maxTokens === 0) {
                tokens = Int32Array.from(promptTokens);
                return {
                  tokens: new Int32Array(0),
                  logprobs: new Float32Array(0),
                  finishReason: "length",
                } satisfies Generation;
              }
              const { value, attempts } = yield* withRetries(holder, async (binding, signal) => {
                const response = await pool.request<CompletionResponse>(
                  binding.server,
                  "POST",
                  "/completion",
                  {
                    prompt: promptTokens,
                    n_predict: sampling.maxTokens,
                    cache_prompt: true,
                    id_slot: binding.slot,
                    return_tokens: true,
                    stream: false,
                    n_probs: 1,
                    post_sampling_probs: false,
                    temperature: sampling.temperature ?? 1,
                    top_k: sampling.topK ?? 0,
                    top_p: sampling.topP ?? 1,
                    // Everything else off, so the sampling distribution is exactly temperature/top-k/top-p.
                    samplers: ["top_k", "top_p", "temperature"],
                    min_p: 0,
                    typical_p: 1,
                    repeat_penalty: 1,
                    presence_penalty: 0,
                    frequency_penalty: 0,
                    dry_multiplier: 0,
                    xtc_probability: 0,
                    mirostat: 0,
                    ...(sampling.seed === undefined ? {} : { seed: sampling.seed }),
                    stop: sampling.stop ?? [],
                    ...(binding.server.lora === undefined ? {} : { lora: binding.server.lora }),
                  },
                  undefined,
                  signal,
                );
                const sampled = response.tokens ?? [];
                const { logprobs, probes } = await logprobsFor(
                  binding,
                  promptTokens,
                  response,
                  sampled,
                  signal,
                );
                return { response, sampled, logprobs, probes, binding };
              });
              const { response, sampled, logprobs, probes, binding } = value;
              const slotContext = binding.server.slotContext || contextSize;
              let finishReason: SampleFinishReason;
              switch (response.stop_type) {
                case "eos":
                  finishReason = "eos";
                  break;
                case "word":
                  finishReason = "stop";
                  break;
                default:
                  finishReason =
                    sampled.length < sampling.maxTokens &&
                    promptTokens.length + sampled.length + 1 >= slotContext
                      ? "context"
                      : "length";
              }
              tokens = Int32Array.from(promptTokens.concat(sampled));
              stats = {
                url: binding.server.url,
                slot: response.id_slot ?? binding.slot,
                promptTokens: response.tokens_evaluated ?? promptTokens.length,
                promptEvaluated: response.timings?.prompt_n ?? Number.NaN,
                promptCached: response.timings?.cache_n ?? Number.NaN,
                probes,
                attempts,
              };
              return {
                tokens: Int32Array.from(sampled),
                logprobs,
                finishReason,
                ...(finishReason === "stop" && response.stopping_word
                  ? { stopString: response.stopping_word }
                  : {}),
              };
            }).pipe(Effect.mapError((e) => toPolicyError("generate", e)));
          return {
            tokens: () => tokens.slice(),
            generate,
            binding: () =>
              holder.binding === undefined
                ? undefined
                : { url: holder.binding.server.url, slot: holder.binding.slot },
            lastStats: () => stats,
          };
        }),
      );

    const score = (
      all: Int32Array,
      from: number,
    ): Effect.Effect<Float32Array, PolicyError | ContextOverflowError> =>
      Effect.gen(function* () {
        if (!Number.isInteger(from) || from < 1 || from > all.length) {
          return yield* new PolicyError({
            message: `HttpPolicy.score: from must be an integer in [1, ${all.length}] (position 0 has no context), got ${from}`,
          });
        }
        const positions = all.length - from;
        if (positions * tokenizer.vocabularySize > scoreProbeLimit) {
          return yield* new LlamaServerUnsupportedError({
            operation: "score",
            message:
              `HttpPolicy.score: llama-server has no prompt logprobs (/v1/completions rejects echo), so scoring probes ` +
              `the whole next-token distribution per position; ${positions} positions × ${tokenizer.vocabularySize} tokens ` +
              `exceeds scoreProbeLimit ${scoreProbeLimit}. Score with LlamaCppPolicy or the learner instead.`,
          });
        }
        yield* Effect.try({ try: () => checkContext(all.length, undefined), catch: (e) => e });
        const prefix = Array.from(all.subarray(0, from));
        const targets = Array.from(all.subarray(from));
        // The holder's slot goes back to the pool whatever happens (failure, interruption).
        const { value } = yield* Effect.acquireUseRelease(
          Effect.sync(() => new Holder(pool)),
          (holder) =>
            withRetries(holder, (binding, signal) =>
              probeLogprobs(
                binding,
                prefix,
                targets,
                targets.map((_, i) => i),
                signal,
              ),
            ),
          (holder) => Effect.sync(() => holder.drop()),
        );
        return Float32Array.from(targets.map((_, i) => value.get(i)!));
      }).pipe(Effect.mapError((e) => toPolicyError("score", e)));

    const reload = (weights: WeightsSource): Effect.Effect<void, ModelLoadError> =>
      Effect.tryPromise({
        try: async () => {
          if (weights.kind === "gguf") {
            throw new ModelLoadError({
              path: weights.path,
              message:
                `HttpPolicy.reload: llama-server cannot load a new model over HTTP. Restart every server with ` +
                `\`llama-server -m ${weights.path} ...\` and build a new HttpPolicy layer (see README-http.md).`,
              cause: new LlamaServerUnsupportedError({
                operation: "reload",
                message: "full model reload over HTTP",
              }),
            });
          }
          if (weights.kind === "lora-bytes") {
            throw new ModelLoadError({
              path: weightsLabel(weights),
              message:
                "HttpPolicy.reload: llama-server takes LoRA adapters only as files loaded at its start; " +
                "save the adapter to a file the servers were started with (`--lora FILE --lora-init-without-apply`) " +
                'and reload { kind: "lora", path: FILE }.',
              cause: new LlamaServerUnsupportedError({
                operation: "reload",
                message: "in-memory LoRA adapter over HTTP",
              }),
            });
          }
          const wanted = resolve(weights.path);
          const servers = await pool.ensureHealthy();
          for (const server of servers) {
            const adapters = await pool.request<ReadonlyArray<{ id: number; path: string; scale: number }>>(
              server,
              "GET",
              "/lora-adapters",
              undefined,
            );
            const match = adapters.find((a) => resolve(a.path) === wanted);
            if (match === undefined) {
              throw new ModelLoadError({
                path: weights.path,
                message:
                  `HttpPolicy.reload: ${server.url} has no LoRA adapter ${weights.path} (it has: ${adapters.map((a) => a.path).join(", ") || "none"}). ` +
                  `llama-server only switches adapters loaded at start: run it with \`--lora ${weights.path} --lora-init-without-apply\`.`,
              });
            }
            const lora = adapters.map((a) => ({
              id: a.id,
              scale: a.id === match.id ? (weights.scale ?? 1) : 0,
            }));
            await pool.request(server, "POST", "/lora-adapters", lora);
            server.lora = lora;
          }
        },
        catch: (e) =>
          e instanceof ModelLoadError
            ? e
            : new ModelLoadError({
                path: weightsLabel(weights),
                message: `HttpPolicy.reload: ${e instanceof Error ? e.message : String(e)}`,
                cause: e,
              }),
      });

    const servers = (): ReadonlyArray<ServerStatus> =>
      pool.servers.map((s) => ({
        url: s.url,
        healthy: s.healthy,
        lastError: s.lastError,
        slots: s.slots,
        slotContext: s.slotContext,
        boundSequences: s.bound,
        inFlight: s.inFlight,
      }));

    const checkHealth = (): Effect.Effect<ReadonlyArray<ServerStatus>, PolicyError> =>
      Effect.tryPromise({
        try: async () => {
          await Promise.all(pool.servers.map((s) => pool.check(s)));
          await pool.ensureHealthy();
          return servers();
        },
        catch: (e) => toPolicyError("checkHealth", e) as PolicyError,
      });

    const shape: HttpPolicyShape = {
      info,
      tokenize: tokenizer.tokenize,
      detokenize: tokenizer.detokenize,
      renderChat: (messages: ReadonlyArray<ChatMessage>, opts) => tokenizer.renderChat(messages, opts),
      renderContinuation: tokenizer.renderContinuation,
      openSequence,
      score,
      reload,
      servers,
      checkHealth,
    };
    return shape;
  });

/** The core `Policy` over llama-server instances. */
export const HttpPolicy = {
  /** Build the policy in a scope (the tokenizer is freed when it closes). */
  make,
  /** The `Policy` layer: `HttpPolicy.layer({ urls, tokenizerModelPath })`. */
  layer: (options: HttpPolicyOptions): Layer.Layer<Policy, PolicyError> =>
    Layer.effect(Policy, make(options)),
} as const;
