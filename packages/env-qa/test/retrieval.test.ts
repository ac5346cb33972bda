import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Retriever, RetrieverError } from "@workflow-r1/core";
import { Effect, Exit, type Layer } from "effect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Bm25Retriever, HttpRetriever, makeBm25Retriever, splitContents } from "../src/retrieval/index.js";
import { json, startServer, type TestServer } from "./executors-server.js";

const CORPUS = [
  { id: "0", contents: '"Eiffel Tower"\nThe Eiffel Tower is a wrought-iron lattice tower in Paris, France.' },
  {
    id: "1",
    contents: '"Colosseum"\nThe Colosseum is an elliptical amphitheatre in the centre of Rome, Italy.',
  },
  {
    id: "2",
    contents:
      '"Big Ben"\nBig Ben is the nickname for the Great Bell of the clock at the Palace of Westminster in London.',
  },
  { id: "3", contents: '"Paris"\nParis is the capital and most populous city of France.' },
  { id: "4", contents: '"Mount Fuji"\nMount Fuji is the highest mountain in Japan.' },
  { id: "5", contents: '"Louvre"\nThe Louvre is the world\'s most-visited museum, in Paris.' },
];

let tmp = "";
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), "env-qa-retrieval-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const searchWith = (layer: Layer.Layer<Retriever, RetrieverError>, query: string, topK: number) =>
  Effect.runPromiseExit(
    Effect.gen(function* () {
      const retriever = yield* Retriever;
      return yield* retriever.search(query, topK);
    }).pipe(Effect.provide(layer)),
  );

const failureOf = (exit: Exit.Exit<unknown, unknown>): unknown => {
  if (Exit.isSuccess(exit)) return undefined;
  const reason = exit.cause.reasons[0];
  return reason !== undefined && "error" in reason ? reason.error : reason;
};

describe("splitContents", () => {
  it("takes the first line as the title without its quotes", () => {
    expect(splitContents('"A title"\nline one\nline two')).toEqual({
      title: "A title",
      text: "line one\nline two",
    });
    expect(splitContents("no newline")).toEqual({ title: "no newline", text: "" });
  });
});

describe("Bm25Retriever", () => {
  it("ranks the matching document first from a corpus jsonl, with title and text split", async () => {
    const file = path.join(tmp, "corpus.jsonl");
    await writeFile(file, `${CORPUS.map((d) => JSON.stringify(d)).join("\n")}\n`);
    const exit = await searchWith(Bm25Retriever.layer({ corpusPath: file }), "highest mountain in Japan", 3);
    if (Exit.isFailure(exit)) throw new Error(String(exit.cause));
    const [top] = exit.value;
    expect(top).toMatchObject({
      id: "4",
      title: "Mount Fuji",
      text: "Mount Fuji is the highest mountain in Japan.",
    });
    expect(top?.score).toBeGreaterThan(0);
  });

  it("respects topK, sorts by score and returns nothing for an empty query or topK 0", async () => {
    const retriever = makeBm25Retriever(CORPUS);
    const hits = await Effect.runPromise(retriever.search("Paris France", 2));
    expect(hits).toHaveLength(2);
    expect(hits[0]?.id).toBe("3"); // both terms, short document
    expect(hits[0]!.score).toBeGreaterThanOrEqual(hits[1]!.score);
    const all = await Effect.runPromise(retriever.search("Paris", 10));
    expect(all.map((h) => h.id).sort()).toEqual(["0", "3", "5"]);
    expect(await Effect.runPromise(retriever.search("", 5))).toEqual([]);
    expect(await Effect.runPromise(retriever.search("   ", 5))).toEqual([]);
    expect(await Effect.runPromise(retriever.search("Paris", 0))).toEqual([]);
    expect(await Effect.runPromise(retriever.search("zyzzyva", 5))).toEqual([]);
  });

  it("ignores stop words (a query of stop words only finds nothing) and accepts {id, title, text}", async () => {
    const retriever = makeBm25Retriever([
      { id: 7, title: "Rome", text: "Rome is the capital of Italy." },
      { id: 8, title: "Oslo", text: "Oslo is the capital of Norway." },
    ]);
    expect(await Effect.runPromise(retriever.search("the of is", 5))).toEqual([]);
    const [top] = await Effect.runPromise(retriever.search("the capital of Norway", 1));
    expect(top).toMatchObject({ id: "8", title: "Oslo" });
  });

  it("fails with a RetrieverError naming file, line and field on a broken corpus", async () => {
    const file = path.join(tmp, "broken-corpus.jsonl");
    await writeFile(
      file,
      `${JSON.stringify(CORPUS[0])}\n${JSON.stringify({ id: "1", text: "no contents" })}\n`,
    );
    const error = failureOf(await searchWith(Bm25Retriever.layer({ corpusPath: file }), "x", 1));
    expect(error).toBeInstanceOf(RetrieverError);
    expect((error as RetrieverError).message).toContain(`${file}:2`);
    expect((error as RetrieverError).message).toContain('"contents"');

    const missing = failureOf(
      await searchWith(Bm25Retriever.layer({ corpusPath: path.join(tmp, "nope.jsonl") }), "x", 1),
    );
    expect(missing).toBeInstanceOf(RetrieverError);
  });
});

describe("HttpRetriever against a real retrieval server", () => {
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  // A tiny Search-R1 retrieval server: BM25 over CORPUS, answering in its wire format.
  const bm25 = makeBm25Retriever(CORPUS);
  const answer = async (body: { queries: string[]; topk: number; return_scores: boolean }) => ({
    result: await Promise.all(
      body.queries.map(async (q) =>
        (await Effect.runPromise(bm25.search(q, body.topk))).map((p) => {
          const document = { id: p.id, contents: `"${p.title}"\n${p.text}` };
          return body.return_scores ? { document, score: p.score } : document;
        }),
      ),
    ),
  });

  it("posts {queries, topk, return_scores} and maps the documents to passages", async () => {
    server = await startServer(async (req, _i, res) => json(res, 200, await answer(req.body as never)));
    const exit = await searchWith(
      HttpRetriever.layer({ url: `${server.url}/retrieve` }),
      "Colosseum Rome",
      2,
    );
    if (Exit.isFailure(exit)) throw new Error(String(exit.cause));
    expect(server.requests[0]?.url).toBe("/retrieve");
    expect(server.requests[0]?.body).toEqual({ queries: ["Colosseum Rome"], topk: 2, return_scores: true });
    expect(exit.value[0]).toMatchObject({ id: "1", title: "Colosseum" });
    expect(exit.value.length).toBeLessThanOrEqual(2);
    expect(exit.value[0]?.score).toBeGreaterThan(0);
  });

  it("accepts results without scores, keeping the server's order", async () => {
    server = await startServer(async (req, _i, res) =>
      json(
        res,
        200,
        await answer({ ...(req.body as never as { queries: string[]; topk: number }), return_scores: false }),
      ),
    );
    const exit = await searchWith(HttpRetriever.layer({ url: `${server.url}/retrieve` }), "Paris", 3);
    if (Exit.isFailure(exit)) throw new Error(String(exit.cause));
    expect(exit.value.map((p) => p.score)).toEqual([1, 1 / 2, 1 / 3]);
  });

  it("retries a 503, then fails with a typed error on a malformed body", async () => {
    server = await startServer(async (req, i, res) =>
      i === 0 ? json(res, 503, "busy") : json(res, 200, await answer(req.body as never)),
    );
    const ok = await searchWith(
      HttpRetriever.layer({ url: `${server.url}/retrieve`, baseDelayMs: 5 }),
      "Louvre",
      1,
    );
    expect(Exit.isSuccess(ok)).toBe(true);
    expect(server.requests).toHaveLength(2);

    await server.close();
    server = await startServer((_r, _i, res) => json(res, 200, { result: "nope" }));
    const bad = failureOf(
      await searchWith(HttpRetriever.layer({ url: `${server.url}/retrieve` }), "Louvre", 1),
    );
    expect(bad).toBeInstanceOf(RetrieverError);
    expect((bad as RetrieverError).message).toContain("unexpected response body");
  });

  it("times out with a RetrieverError after its retries", async () => {
    server = await startServer(async (_r, _i, res) => {
      await new Promise((r) => setTimeout(r, 1_000));
      if (!res.destroyed) json(res, 200, { result: [[]] });
    });
    const error = failureOf(
      await searchWith(
        HttpRetriever.layer({ url: `${server.url}/retrieve`, timeoutMs: 50, maxRetries: 1, baseDelayMs: 5 }),
        "x",
        1,
      ),
    );
    expect(error).toBeInstanceOf(RetrieverError);
    expect((error as RetrieverError).message).toContain("after 2 attempts");
    expect(server.requests).toHaveLength(2);
  });
});
