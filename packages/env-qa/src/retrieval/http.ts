/**
 * A `Retriever` over a Search-R1 / FlashRAG retrieval server: `POST {url} {queries, topk, return_scores}`
 * → `{result: [[{document: {id, contents}, score}, …]]}`. Same timeout / retry policy as the executor.
 */
import { type Passage, Retriever, RetrieverError, type RetrieverShape } from "@workflow-r1/core";
import { Effect, Layer, Result, Schema, Semaphore } from "effect";
import { postJson, type RetryPolicy } from "../executors/transport.js";
import { splitContents } from "./passage.js";

export interface HttpRetrieverConfig {
  /** The full endpoint, e.g. `http://127.0.0.1:8000/retrieve` (Search-R1's `retriever.url`). */
  readonly url: string;
  /** Per-attempt time limit. Default 30 000 ms. */
  readonly timeoutMs?: number;
  /** Retries on 429, 5xx, network errors and timeouts. Default 3. */
  readonly maxRetries?: number;
  /** First backoff delay (doubles per retry, ±20% jitter). Default 250 ms. */
  readonly baseDelayMs?: number;
  /** Cap on one backoff delay, Retry-After included. Default 10 000 ms. */
  readonly maxDelayMs?: number;
  /** Requests in flight at once. Default 16. */
  readonly concurrency?: number;
}

const Doc = Schema.Struct({
  id: Schema.optional(Schema.Union([Schema.String, Schema.Number])),
  contents: Schema.optional(Schema.String),
  title: Schema.optional(Schema.String),
  text: Schema.optional(Schema.String),
});
const Hit = Schema.Union([Schema.Struct({ document: Doc, score: Schema.optional(Schema.Number) }), Doc]);

/** The retrieval server's answer (with or without scores). */
export const RetrieveResponse = Schema.Struct({ result: Schema.Array(Schema.Array(Hit)) });
const decodeResponse = Schema.decodeUnknownResult(RetrieveResponse);

const toPassage = (hit: typeof Hit.Type, rank: number): Passage => {
  const doc = "document" in hit ? hit.document : hit;
  const score = "document" in hit && hit.score !== undefined ? hit.score : 1 / (rank + 1); // no scores: a reciprocal rank keeps the order
  const { title, text } =
    doc.contents !== undefined
      ? splitContents(doc.contents)
      : { title: doc.title ?? "", text: doc.text ?? "" };
  return { id: doc.id === undefined ? String(rank) : String(doc.id), title, text, score };
};

export const makeHttpRetriever = (
  config: HttpRetrieverConfig,
): Effect.Effect<RetrieverShape, RetrieverError> =>
  Effect.gen(function* () {
    if (!URL.canParse(config.url)) {
      return yield* new RetrieverError({ message: `retriever URL is not a URL: ${config.url}` });
    }
    const policy: RetryPolicy = {
      timeoutMs: config.timeoutMs ?? 30_000,
      maxRetries: config.maxRetries ?? 3,
      baseDelayMs: config.baseDelayMs ?? 250,
      maxDelayMs: config.maxDelayMs ?? 10_000,
    };
    const semaphore = yield* Semaphore.make(config.concurrency ?? 16);
    const search = (query: string, topK: number): Effect.Effect<ReadonlyArray<Passage>, RetrieverError> => {
      const k = Math.floor(topK);
      if (k <= 0 || query.trim() === "") return Effect.succeed([]);
      return postJson({
        url: config.url,
        body: { queries: [query], topk: k, return_scores: true },
        policy,
      }).pipe(
        Effect.mapError(
          (f) =>
            new RetrieverError({
              message: `retriever ${config.url}: ${f.message} (after ${f.attempts} attempt${f.attempts === 1 ? "" : "s"})`,
              cause: f,
            }),
        ),
        Effect.flatMap(({ json }) => {
          const decoded = decodeResponse(json);
          if (Result.isFailure(decoded)) {
            return Effect.fail(
              new RetrieverError({
                message: `retriever ${config.url}: unexpected response body: ${decoded.failure.message.replace(/\s+/g, " ")}`,
              }),
            );
          }
          const hits = decoded.success.result[0] ?? [];
          return Effect.succeed(hits.slice(0, k).map(toPassage));
        }),
        semaphore.withPermits(1),
      );
    };
    return { search };
  });

export const HttpRetriever = {
  /** A `Retriever` layer over a Search-R1 retrieval server. */
  layer: (config: HttpRetrieverConfig): Layer.Layer<Retriever, RetrieverError> =>
    Layer.effect(Retriever, makeHttpRetriever(config)),
  make: makeHttpRetriever,
} as const;
