/**
 * Unit tests of HttpPolicy's HTTP layer (retries, backoff, timeouts, status handling, server
 * choice, logprob alignment) against scripted fake llama-servers on 127.0.0.1. The real server
 * is exercised in http-policy.test.ts; here each answer is chosen so one rule can fail on its own.
 */

import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ContextOverflowError, Policy, PolicyError } from "@workflow-r1/core";
import { createTinyLlama } from "@workflow-r1/gguf";
import { Effect, Exit, Scope } from "effect";
import { readGgufFileInfo } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { endsInsideUtf8Char, HttpPolicy } from "../src/http/index.js";

type Reply = { status?: number; body?: unknown; delayMs?: number };
interface Fake {
  url: string;
  server: Server;
  nVocab: number;
  health: Reply;
  /** Scripted answers for `POST /completion`, in order; when empty, `completion` answers. */
  script: Reply[];
  completion: (request: Record<string, unknown>) => Reply;
  pieces: Record<number, string | number[]>;
  requests: Array<Record<string, unknown>>;
  /** Requests whose connection the client closed before the answer was sent. */
  aborted: number;
}

const readBody = (req: IncomingMessage) =>
  new Promise<string>((ok) => {
    let s = "";
    req.on("data", (c) => {
      s += c;
    });
    req.on("end", () => ok(s));
  });

const startFake = async (nVocab: number): Promise<Fake> => {
  const fake: Fake = {
    url: "",
    server: undefined as never,
    nVocab,
    health: { status: 200, body: { status: "ok" } },
    script: [],
    completion: () => ({
      body: { tokens: [5], stop_type: "limit", completion_probabilities: [{ id: 5, logprob: -1 }] },
    }),
    pieces: {},
    requests: [],
    aborted: 0,
  };
  const send = async (res: ServerResponse, reply: Reply) => {
    if (reply.delayMs) await new Promise((r) => setTimeout(r, reply.delayMs));
    if (res.destroyed) return;
    res.writeHead(reply.status ?? 200, { "content-type": "application/json" });
    res.end(JSON.stringify(reply.body ?? {}));
  };
  fake.server = createServer(async (req, res) => {
    res.on("close", () => {
      if (!res.writableEnded) fake.aborted++;
    });
    const text = await readBody(req);
    const body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    if (req.url === "/health") return send(res, fake.health);
    if (req.url === "/props")
      return send(res, { body: { total_slots: 2, default_generation_settings: { n_ctx: 256 } } });
    if (req.url === "/v1/models") return send(res, { body: { data: [{ meta: { n_vocab: fake.nVocab } }] } });
    if (req.url === "/tokenize") {
      const content = body.content;
      if (typeof content === "string") return send(res, { body: { tokens: Array.from(content, () => 1) } });
      const ids = content as number[];
      return send(res, { body: { tokens: ids.map((id) => ({ id, piece: fake.pieces[id] ?? "x" })) } });
    }
    if (req.url === "/lora-adapters") {
      if (req.method === "GET") {
        return send(res, {
          body: [
            { id: 0, path: "/models/step-1.gguf", scale: 0 },
            { id: 1, path: "/models/step-2.gguf", scale: 0 },
          ],
        });
      }
      fake.requests.push({ loraAdapters: body });
      return send(res, { body: { success: true } });
    }
    if (req.url === "/completion") {
      fake.requests.push(body);
      return send(res, fake.script.shift() ?? fake.completion(body));
    }
    return send(res, { status: 404, body: { error: { message: "not found" } } });
  });
  await new Promise<void>((ok) => fake.server.listen(0, "127.0.0.1", ok));
  const address = fake.server.address();
  fake.url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  return fake;
};

const withPolicy = async <A>(
  urls: ReadonlyArray<string>,
  modelPath: string,
  body: (policy: Effect.Success<ReturnType<typeof HttpPolicy.make>>) => Promise<A>,
  extra: Partial<Parameters<typeof HttpPolicy.make>[0]> = {},
): Promise<A> => {
  const scope = Effect.runSync(Scope.make());
  try {
    const policy = await Effect.runPromise(
      Scope.provide(
        HttpPolicy.make({ urls, tokenizerModelPath: modelPath, backoffMs: 1, retries: 2, ...extra }),
        scope,
      ),
    );
    return await body(policy);
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void));
  }
};

const failure = async <A, E>(effect: Effect.Effect<A, E>): Promise<E> =>
  Effect.runPromise(Effect.flip(effect));

describe("endsInsideUtf8Char (llama-server's validate_utf8)", () => {
  it("is true only when the last bytes start a multi-byte character that is not finished", () => {
    expect(endsInsideUtf8Char([])).toBe(false);
    expect(endsInsideUtf8Char([0x61])).toBe(false);
    expect(endsInsideUtf8Char([0xc3])).toBe(true);
    expect(endsInsideUtf8Char([0xc3, 0xa9])).toBe(false);
    expect(endsInsideUtf8Char([0xe2, 0x82])).toBe(true);
    expect(endsInsideUtf8Char([0xe2, 0x82, 0xac])).toBe(false);
    expect(endsInsideUtf8Char([0xf0, 0x9f, 0x98])).toBe(true);
    expect(endsInsideUtf8Char([0xf0, 0x9f, 0x98, 0x80])).toBe(false);
    // The server only counts bytes after a lead byte, valid or not: E6 then 11 is still "inside".
    expect(endsInsideUtf8Char([0xe6, 0x11])).toBe(true);
    expect(endsInsideUtf8Char([0xe6, 0x11, 0x05])).toBe(false);
    // A lone continuation byte does not count as unfinished.
    expect(endsInsideUtf8Char([0xb4])).toBe(false);
  });
});

describe("HttpPolicy over scripted servers", () => {
  let dir: string;
  let modelPath: string;
  let nVocab: number;
  const fakes: Fake[] = [];
  const fresh = async () => {
    const fake = await startFake(nVocab);
    fakes.push(fake);
    return fake;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "wr1-http-retry-"));
    modelPath = (await createTinyLlama({ path: join(dir, "tiny.gguf") })).path;
    const info = await readGgufFileInfo(modelPath, { readTensorInfo: false, logWarnings: false });
    nVocab = (info.metadata as unknown as { tokenizer: { ggml: { tokens: unknown[] } } }).tokenizer.ggml
      .tokens.length;
  }, 60_000);

  afterAll(() => {
    for (const f of fakes) f.server.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const sample = (
    policy: Effect.Success<ReturnType<typeof HttpPolicy.make>>,
    maxTokens = 3,
    stop?: string[],
  ) =>
    Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const sequence = yield* policy.openSequence(new Int32Array([1, 2, 3]));
          const generation = yield* sequence.generate(new Int32Array(0), {
            maxTokens,
            ...(stop ? { stop } : {}),
          });
          return { generation, stats: sequence.lastStats()! };
        }),
      ),
    );

  it("provides the core Policy service through HttpPolicy.layer", async () => {
    const fake = await fresh();
    const tokens = await Effect.runPromise(
      Effect.gen(function* () {
        const policy = yield* Policy;
        const sequence = yield* policy.openSequence(new Int32Array([1, 2]));
        const generation = yield* sequence.generate(new Int32Array(0), { maxTokens: 1 });
        return Array.from(generation.tokens);
      }).pipe(
        Effect.scoped,
        Effect.provide(HttpPolicy.layer({ urls: [fake.url], tokenizerModelPath: modelPath })),
      ),
    );
    expect(tokens).toEqual([5]);
  });

  it("refuses a server whose model has another vocabulary", async () => {
    const fake = await fresh();
    fake.nVocab = nVocab + 1;
    const error = await withPolicy([fake.url], modelPath, async () => undefined).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PolicyError);
    expect((error as PolicyError).message).toContain(`${nVocab + 1} tokens`);
  });

  it("sends the whole token array with a sticky slot and untruncated sampling settings", async () => {
    const fake = await fresh();
    await withPolicy([fake.url], modelPath, async (policy) => {
      await sample(policy);
      const request = fake.requests[0]!;
      expect(request).toMatchObject({
        prompt: [1, 2, 3],
        n_predict: 3,
        cache_prompt: true,
        return_tokens: true,
        n_probs: 1,
        post_sampling_probs: false,
        temperature: 1,
        top_k: 0,
        top_p: 1,
        min_p: 0,
      });
      expect(request.id_slot).toBeGreaterThanOrEqual(0);
    });
  });

  it("retries 503 answers with backoff on the same server", async () => {
    const fake = await fresh();
    await withPolicy([fake.url], modelPath, async (policy) => {
      const busy = { status: 503, body: { error: { message: "Loading model" } } };
      fake.script.push(busy, busy);
      const { generation, stats } = await sample(policy);
      expect(Array.from(generation.tokens)).toEqual([5]);
      expect(stats.attempts).toBe(3);
      expect(policy.servers()[0]!.healthy).toBe(true);
    });
  });

  it("does not retry a request the server rejects (4xx) and reports its status", async () => {
    const fake = await fresh();
    await withPolicy([fake.url], modelPath, async (policy) => {
      fake.script.push({ status: 400, body: { error: { message: "bad n_predict" } } });
      const error = await failure(
        Effect.scoped(
          Effect.flatMap(policy.openSequence(new Int32Array([1])), (s) =>
            s.generate(new Int32Array(0), { maxTokens: 2 }),
          ),
        ),
      );
      expect(error).toBeInstanceOf(PolicyError);
      expect((error as PolicyError).cause).toMatchObject({
        _tag: "LlamaServerHttpError",
        status: 400,
        attempts: 1,
        url: fake.url,
        endpoint: "POST /completion",
      });
      expect(error.message).toContain("bad n_predict");
      expect(fake.requests.length).toBe(1);
    });
  });

  it("turns the server's exceed_context_size_error into a ContextOverflowError", async () => {
    const fake = await fresh();
    await withPolicy([fake.url], modelPath, async (policy) => {
      fake.script.push({
        status: 400,
        body: {
          error: {
            code: 400,
            type: "exceed_context_size_error",
            message: "request (300 tokens) exceeds the available context size (256 tokens)",
            n_prompt_tokens: 300,
            n_ctx: 256,
          },
        },
      });
      const error = await failure(
        Effect.scoped(
          Effect.flatMap(policy.openSequence(new Int32Array([1])), (s) =>
            s.generate(new Int32Array(0), { maxTokens: 2 }),
          ),
        ),
      );
      expect(error).toBeInstanceOf(ContextOverflowError);
      expect(error).toMatchObject({ needed: 300, contextSize: 256 });
      expect(fake.requests.length).toBe(1);
    });
  });

  it("times out slow answers and gives up after the configured attempts", async () => {
    const fake = await fresh();
    await withPolicy(
      [fake.url],
      modelPath,
      async (policy) => {
        fake.completion = () => ({ delayMs: 400, body: {} });
        const error = await failure(
          Effect.scoped(
            Effect.flatMap(policy.openSequence(new Int32Array([1])), (s) =>
              s.generate(new Int32Array(0), { maxTokens: 2 }),
            ),
          ),
        );
        expect((error as PolicyError).cause).toMatchObject({ reason: "timeout", attempts: 3 });
        expect(fake.requests.length).toBe(3);
      },
      { requestTimeoutMs: 100 },
    );
  });

  it("aborts the request, without retrying, when the caller interrupts", async () => {
    const fake = await fresh();
    await withPolicy([fake.url], modelPath, async (policy) => {
      fake.completion = () => ({ delayMs: 2_000, body: {} });
      const exit = await Effect.runPromiseExit(
        Effect.scoped(
          Effect.flatMap(policy.openSequence(new Int32Array([1])), (s) =>
            s.generate(new Int32Array(0), { maxTokens: 2 }),
          ),
        ).pipe(Effect.timeout(150)),
      );
      expect(Exit.isFailure(exit)).toBe(true);
      await new Promise((r) => setTimeout(r, 100));
      expect(fake.aborted).toBe(1);
      expect(fake.requests.length).toBe(1);
      expect(policy.servers()[0]!.healthy).toBe(true);
    });
  });

  it("moves a sequence to another server when its server fails, and least-busy spreads sequences", async () => {
    const a = await fresh();
    const b = await fresh();
    await withPolicy([a.url, b.url], modelPath, async (policy) => {
      await Effect.runPromise(
        Effect.scoped(
          Effect.gen(function* () {
            const sequences = yield* Effect.all(
              [1, 2, 3, 4].map(() => policy.openSequence(new Int32Array([1, 2]))),
            );
            const perServer = sequences.map((s) => s.binding()!.url);
            expect(perServer.filter((u) => u === a.url).length).toBe(2);
            expect(perServer.filter((u) => u === b.url).length).toBe(2);
            // A answers 500 from now on and its health check fails too.
            a.completion = () => ({ status: 500, body: { error: { message: "boom" } } });
            a.health = { status: 500, body: { error: { message: "down" } } };
            const onA = sequences.find((s) => s.binding()!.url === a.url)!;
            const generation = yield* onA.generate(new Int32Array([7]), { maxTokens: 1 });
            expect(Array.from(generation.tokens)).toEqual([5]);
            expect(onA.lastStats()).toMatchObject({ url: b.url, attempts: 2 });
            // B got the whole token array, not just the appended part.
            expect(b.requests.at(-1)!.prompt).toEqual([1, 2, 7]);
            expect(policy.servers().find((s) => s.url === a.url)!.healthy).toBe(false);
          }),
        ),
      );
    });
  });

  it("switches a preloaded LoRA adapter and sends its scales with every completion", async () => {
    const fake = await fresh();
    await withPolicy([fake.url], modelPath, async (policy) => {
      await Effect.runPromise(policy.reload({ kind: "lora", path: "/models/step-2.gguf", scale: 0.5 }));
      const set = [
        { id: 0, scale: 0 },
        { id: 1, scale: 0.5 },
      ];
      expect(fake.requests.at(-1)).toEqual({ loraAdapters: set });
      await sample(policy);
      // Per-request `lora` makes the server drop slot caches computed under other adapter scales.
      expect(fake.requests.at(-1)!.lora).toEqual(set);
      const missing = await failure(policy.reload({ kind: "lora", path: "/models/step-3.gguf" }));
      expect(missing._tag).toBe("ModelLoadError");
      expect(missing.message).toContain("--lora-init-without-apply");
    });
  });

  it("fills logprobs the server leaves out (unfinished UTF-8, stop string) with probes at the right positions", async () => {
    const fake = await fresh();
    // Sampled: 10 11 12 13 14; 11 ends inside a UTF-8 character (E2), 12 finishes it (82 AC);
    // 13 14 spell the stop string "ab" (the fake tokenizes it as 2 tokens).
    fake.pieces = { 10: "x", 11: [0xe2], 12: [0x82, 0xac], 13: "a", 14: "b" };
    fake.completion = (request) => {
      if (request.n_predict === 1 && Array.isArray(request.logit_bias)) {
        // A probe: logprob = -(id + position)/100; a top-n answer (n < vocabulary) knows ids 0..11
        // only, so 13 and 14 need the second, whole-vocabulary probe.
        const position = (request.prompt as number[]).length;
        const known = request.n_probs === fake.nVocab ? 20 : 12;
        const top = Array.from({ length: known }, (_, id) => ({ id, logprob: -(id + position) / 100 }));
        return {
          body: {
            tokens: [0],
            stop_type: "limit",
            completion_probabilities: [{ id: 0, logprob: -9, top_logprobs: top }],
          },
        };
      }
      return {
        body: {
          tokens: [10, 11, 12, 13, 14],
          stop_type: "word",
          stopping_word: "ab",
          // What llama-server sends: no entry for 11, and the stop string's 2 tokens cut from the end.
          completion_probabilities: [
            { id: 10, logprob: -0.5 },
            { id: 12, logprob: -0.25 },
          ],
        },
      };
    };
    await withPolicy([fake.url], modelPath, async (policy) => {
      const { generation, stats } = await sample(policy, 8, ["ab"]);
      expect(generation.finishReason).toBe("stop");
      expect(generation.stopString).toBe("ab");
      expect(Array.from(generation.tokens)).toEqual([10, 11, 12, 13, 14]);
      expect(stats.probes).toBe(3);
      // Prompt [1,2,3]: token 11 sits at position 4, 13 at 6, 14 at 7.
      expect(Array.from(generation.logprobs)).toEqual(
        [-0.5, -(11 + 4) / 100, -0.25, -(13 + 6) / 100, -(14 + 7) / 100].map(Math.fround),
      );
      const probes = fake.requests.filter((r) => r.n_predict === 1);
      expect(probes.map((r) => [(r.prompt as number[]).length, r.n_probs])).toEqual(
        nVocab > 64
          ? [
              [4, 64],
              [6, 64],
              [6, nVocab],
              [7, 64],
              [7, nVocab],
            ]
          : [
              [4, nVocab],
              [6, nVocab],
              [7, nVocab],
            ],
      );
    });
  });
});

describe("HttpPolicy local tokenizer and chat template", () => {
  let dir: string;
  let modelPath: string;
  let fake: Fake;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "wr1-http-tok-"));
    modelPath = (await createTinyLlama({ path: join(dir, "tiny.gguf") })).path;
    const info = await readGgufFileInfo(modelPath, { readTensorInfo: false, logWarnings: false });
    fake = await startFake(
      (info.metadata as unknown as { tokenizer: { ggml: { tokens: unknown[] } } }).tokenizer.ggml.tokens
        .length,
    );
  }, 60_000);

  afterAll(() => {
    fake?.server.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("tokenizes locally, renders the chat template and continues an assistant turn", async () => {
    await withPolicy([fake.url], modelPath, async (policy) => {
      const text = "Hello, world: 2+2=4 — ok?";
      expect(policy.detokenize(policy.tokenize(text))).toBe(text);
      const info = policy.info();
      expect(info.contextSize).toBe(256);
      expect(info.endOfTurnTokens.length).toBeGreaterThan(0);
      const messages = [
        { role: "system" as const, content: "Be brief." },
        { role: "user" as const, content: "Hi" },
      ];
      const rendered = policy.renderChat(messages, { addGenerationPrompt: true });
      const withoutHeader = policy.renderChat(messages);
      const renderedText = policy.detokenize(rendered);
      expect(renderedText).toContain("Be brief.");
      expect(renderedText).toContain("Hi");
      // The generation prompt only appends an assistant header.
      expect(Array.from(rendered.subarray(0, withoutHeader.length))).toEqual(Array.from(withoutHeader));
      expect(rendered.length).toBeGreaterThan(withoutHeader.length);
      // Continuing after a sampled assistant turn: tool message, then a fresh assistant header, the
      // same tokens a full render of the conversation has after the assistant's text.
      const answer = policy.tokenize("Sure");
      const continuation = policy.renderContinuation([{ role: "tool", content: "42" }], answer);
      const full = policy.renderChat(
        [...messages, { role: "assistant", content: "Sure" }, { role: "tool", content: "42" }],
        { addGenerationPrompt: true },
      );
      expect(policy.detokenize([...rendered, ...answer, ...continuation])).toBe(policy.detokenize(full));
      // When the model closed its turn itself (ChatML's <|im_end|> is one special token in
      // createTinyLlama's vocabulary), the continuation does not close it again.
      const imEnd = policy.tokenize("<|im_end|>", { special: true });
      expect(imEnd.length).toBe(1);
      if (imEnd.length === 1) {
        expect(info.endOfTurnTokens).toContain(imEnd[0]);
        // Same chat side as LlamaCppPolicy: ChatML's turn end, plain ChatML's role mapping.
        expect(info.turnEndToken).toBe(imEnd[0]);
        expect(info.chatRoles).toEqual({ system: "system", tool: "user" });
        const closed = policy.renderContinuation([{ role: "tool", content: "42" }], [...answer, imEnd[0]!]);
        expect(Array.from(closed)).toEqual(Array.from(continuation.subarray(1)));
        expect(continuation[0]).toBe(imEnd[0]);
      }
    });
  });
});
