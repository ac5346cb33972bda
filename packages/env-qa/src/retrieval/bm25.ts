/**
 * The embedded default `Retriever`: BM25 over a local corpus (FlashRAG jsonl or documents in memory),
 * indexed with MiniSearch. Defaults follow Pyserini's BM25 (k1 = 0.9, b = 0.4) over the whole
 * `contents` field, as FlashRAG's and Search-R1's BM25 indexes do, with Lucene's English stop words.
 */
import { type Passage, Retriever, RetrieverError, type RetrieverShape } from "@workflow-r1/core";
import { Effect, Layer, Result, Schema, Stream } from "effect";
import MiniSearch from "minisearch";
import { issueField, issueReason } from "../datasets/issues.js";
import { streamJsonl } from "../datasets/jsonl.js";
import { CorpusDocument, splitContents } from "./passage.js";

/** A document given in memory: FlashRAG `{id, contents}` or already split `{id, title, text}`. */
export type Bm25Document =
  | { readonly id: string | number; readonly contents: string }
  | { readonly id: string | number; readonly title: string; readonly text: string };

export interface Bm25Params {
  /** Term-frequency saturation. Default 0.9 (Pyserini). */
  readonly k1?: number;
  /** Length normalisation. Default 0.4 (Pyserini). */
  readonly b?: number;
  /** BM25+ lower bound on a matching term's contribution. Default 0 (plain BM25). */
  readonly delta?: number;
}

export type Bm25RetrieverConfig = (
  | { readonly corpusPath: string; readonly documents?: undefined }
  | { readonly documents: ReadonlyArray<Bm25Document>; readonly corpusPath?: undefined }
) & {
  readonly bm25?: Bm25Params;
  /** Drop Lucene's English stop words from documents and queries. Default true. */
  readonly stopWords?: boolean;
};

/** Lucene's `EnglishAnalyzer.ENGLISH_STOP_WORDS_SET` (the set Pyserini's default analyzer uses). */
const LUCENE_STOP_WORDS = new Set(
  "a an and are as at be but by for if in into is it no not of on or such that the their then there these they this to was will with".split(
    " ",
  ),
);

interface IndexedDoc {
  readonly i: number;
  readonly contents: string;
}

/** Build the index and the retriever over already-read documents. */
export const makeBm25Retriever = (
  documents: ReadonlyArray<Bm25Document>,
  options: { readonly bm25?: Bm25Params; readonly stopWords?: boolean } = {},
): RetrieverShape => {
  const stop = options.stopWords ?? true;
  const ids: string[] = [];
  const titles: string[] = [];
  const texts: string[] = [];
  const index = new MiniSearch<IndexedDoc>({
    fields: ["contents"],
    idField: "i",
    storeFields: [],
    processTerm: (term) => {
      const lower = term.toLowerCase();
      return stop && LUCENE_STOP_WORDS.has(lower) ? null : lower;
    },
  });
  const indexed: IndexedDoc[] = documents.map((doc, i) => {
    const { title, text } =
      "contents" in doc ? splitContents(doc.contents) : { title: doc.title, text: doc.text };
    ids.push(String(doc.id));
    titles.push(title);
    texts.push(text);
    return { i, contents: "contents" in doc ? doc.contents : `${title}\n${text}` };
  });
  index.addAll(indexed);
  const bm25 = { k: options.bm25?.k1 ?? 0.9, b: options.bm25?.b ?? 0.4, d: options.bm25?.delta ?? 0 };

  const search = (query: string, topK: number): Effect.Effect<ReadonlyArray<Passage>, RetrieverError> =>
    Effect.sync(() => {
      const k = Math.floor(topK);
      if (k <= 0 || query.trim() === "") return [];
      return index
        .search(query, { combineWith: "OR", prefix: false, fuzzy: false, bm25 })
        .slice(0, k)
        .map((hit) => {
          const i = hit.id as number;
          return { id: ids[i] ?? "", title: titles[i] ?? "", text: texts[i] ?? "", score: hit.score };
        });
    });
  return { search };
};

const decodeDocument = Schema.decodeUnknownResult(CorpusDocument);

/** Read a FlashRAG corpus jsonl (`{id, contents}` per line) line by line. */
export const readCorpus = (file: string): Effect.Effect<CorpusDocument[], RetrieverError> =>
  streamJsonl(file).pipe(
    Stream.mapEffect(({ line, value }) => {
      const decoded = decodeDocument(value);
      if (Result.isSuccess(decoded)) return Effect.succeed(decoded.success);
      const field = issueField(decoded.failure);
      return Effect.fail(
        new RetrieverError({
          message: `corpus ${file}:${line}: ${field === undefined ? "record" : `field "${field}"`}: ${issueReason(decoded.failure)} (expected {id: string, contents: string})`,
        }),
      );
    }),
    Stream.runCollect,
    Effect.mapError((e) =>
      e instanceof RetrieverError ? e : new RetrieverError({ message: `corpus: ${e.message}`, cause: e }),
    ),
  );

export const Bm25Retriever = {
  /** A `Retriever` layer: BM25 over `corpusPath` (FlashRAG jsonl) or in-memory `documents`. */
  layer: (config: Bm25RetrieverConfig): Layer.Layer<Retriever, RetrieverError> =>
    Layer.effect(Retriever, Bm25Retriever.make(config)),
  make: (config: Bm25RetrieverConfig): Effect.Effect<RetrieverShape, RetrieverError> =>
    Effect.map(
      config.corpusPath !== undefined
        ? readCorpus(config.corpusPath)
        : Effect.succeed(config.documents ?? []),
      (documents) =>
        makeBm25Retriever(documents, {
          ...(config.bm25 === undefined ? {} : { bm25: config.bm25 }),
          ...(config.stopWords === undefined ? {} : { stopWords: config.stopWords }),
        }),
    ),
} as const;
