import { Executor, ExecutorHttpError, ExecutorTimeoutError } from "@workflow-r1/core";
import { Effect, Exit, Redacted } from "effect";
import { afterEach, describe, expect, it } from "vitest";
import { HttpExecutor, resolveHttpExecutorConfig } from "../src/executors/index.js";
import { parseRetryAfter } from "../src/executors/transport.js";
import { chatAnswer, json, startServer, type TestServer } from "./executors-server.js";

const SECRET = "sk-test-SECRET-1234567890";
let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const fast = { model: "m", apiKey: SECRET, baseDelayMs: 5, maxDelayMs: 2_000, timeoutMs: 2_000, env: {} };
const ask = (text: string) => ({ messages: [{ role: "user" as const, content: text }] });

const run = <A, E>(effect: Effect.Effect<A, E, Executor>, config: Parameters<typeof HttpExecutor.layer>[0]) =>
  Effect.runPromiseExit(effect.pipe(Effect.provide(HttpExecutor.layer(config))));

const complete = (text: string) =>
  Effect.gen(function* () {
    const executor = yield* Executor;
    return yield* executor.complete(ask(text));
  });

describe("HttpExecutor against a real HTTP server", () => {
  it("posts an OpenAI chat-completions request and returns the first choice", async () => {
    server = await startServer((req, _i, res) =>
      json(
        res,
        200,
        chatAnswer(`echo: ${(req.body as { messages: { content: string }[] }).messages[0]?.content}`),
      ),
    );
    const exit = await run(
      Effect.gen(function* () {
        const executor = yield* Executor;
        return yield* executor.complete({ ...ask("hi"), temperature: 0.3, maxTokens: 7, stop: ["</x>"] });
      }),
      { ...fast, baseUrl: `${server.url}/v1/` },
    );
    expect(exit).toEqual(Exit.succeed({ text: "echo: hi", finishReason: "stop" }));
    const [req] = server.requests;
    expect(req?.url).toBe("/v1/chat/completions");
    expect(req?.headers.authorization).toBe(`Bearer ${SECRET}`);
    expect(req?.body).toEqual({
      model: "m",
      messages: [{ role: "user", content: "hi" }],
      temperature: 0.3,
      max_tokens: 7,
      stop: ["</x>"],
    });
  });

  it("maps finish_reason length and null content", async () => {
    server = await startServer((_r, _i, res) =>
      json(res, 200, { choices: [{ message: { content: null }, finish_reason: "length" }] }),
    );
    const exit = await run(complete("x"), { ...fast, baseUrl: server.url });
    expect(exit).toEqual(Exit.succeed({ text: "", finishReason: "length" }));
  });

  it("retries a 500 and then succeeds", async () => {
    server = await startServer((_r, i, res) =>
      i === 0 ? json(res, 500, { error: "boom" }) : json(res, 200, chatAnswer("second")),
    );
    const exit = await run(complete("x"), { ...fast, baseUrl: server.url });
    expect(exit).toEqual(Exit.succeed({ text: "second", finishReason: "stop" }));
    expect(server.requests).toHaveLength(2);
  });

  it("waits at least Retry-After seconds after a 429", async () => {
    server = await startServer((_r, i, res) =>
      i === 0
        ? json(res, 429, { error: "slow down" }, { "retry-after": "1" })
        : json(res, 200, chatAnswer("ok")),
    );
    const exit = await run(complete("x"), { ...fast, baseUrl: server.url });
    expect(Exit.isSuccess(exit)).toBe(true);
    const [first, second] = server.requests;
    // The backoff alone would be ~5 ms; the gap shows the server's Retry-After was honoured.
    expect((second?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(950);
  });

  it("gives up after maxRetries with the status and attempt count, and does not retry a 400", async () => {
    server = await startServer((_r, _i, res) => json(res, 503, { error: "down" }));
    const exit = await run(complete("x"), { ...fast, baseUrl: server.url, maxRetries: 2 });
    expect(server.requests).toHaveLength(3);
    expect(failure(exit)).toMatchObject({
      _tag: "ExecutorHttpError",
      status: 503,
      attempts: 3,
    });

    await server.close();
    server = await startServer((_r, _i, res) => json(res, 400, { error: "bad request" }));
    const bad = await run(complete("x"), { ...fast, baseUrl: server.url, maxRetries: 2 });
    expect(server.requests).toHaveLength(1);
    expect(failure(bad)).toMatchObject({ _tag: "ExecutorHttpError", status: 400, attempts: 1 });
  });

  it("times out slow answers with ExecutorTimeoutError after every attempt", async () => {
    server = await startServer(async (_r, _i, res) => {
      await new Promise((r) => setTimeout(r, 1_500));
      if (!res.destroyed) json(res, 200, chatAnswer("late"));
    });
    const exit = await run(complete("x"), { ...fast, baseUrl: server.url, timeoutMs: 100, maxRetries: 1 });
    const error = failure(exit);
    expect(error).toBeInstanceOf(ExecutorTimeoutError);
    expect(error).toMatchObject({ timeoutMs: 100, attempts: 2 });
  });

  it("fails with a typed error on malformed JSON and on a body of the wrong shape", async () => {
    server = await startServer((_r, _i, res) => json(res, 200, "{not json"));
    const exit = await run(complete("x"), { ...fast, baseUrl: server.url });
    const error = failure(exit);
    expect(error).toBeInstanceOf(ExecutorHttpError);
    expect(String((error as ExecutorHttpError).message)).toContain("not JSON");
    expect(server.requests).toHaveLength(1);

    await server.close();
    server = await startServer((_r, _i, res) => json(res, 200, { choices: [] }));
    const shape = failure(await run(complete("x"), { ...fast, baseUrl: server.url }));
    expect(shape).toBeInstanceOf(ExecutorHttpError);
    expect((shape as ExecutorHttpError).message).toContain("unexpected response body");
  });

  it("never puts the API key in error messages, even when the server echoes it", async () => {
    server = await startServer((req, _i, res) =>
      json(res, 401, { error: `bad key ${req.headers.authorization}` }),
    );
    const error = failure(await run(complete("x"), { ...fast, baseUrl: server.url }));
    expect(error).toBeInstanceOf(ExecutorHttpError);
    expect((error as ExecutorHttpError).message).toContain("[redacted]");

    // Server text quoted in errors never carries angle brackets into an agent's observation.
    await server.close();
    server = await startServer((_r, _i, res) => json(res, 404, "<html><body>Not Found</body></html>"));
    const html = failure(await run(complete("x"), { ...fast, baseUrl: server.url }));
    expect((html as ExecutorHttpError).message).toContain("HTTP 404: ‹html›‹body›Not Found");
    expect((html as ExecutorHttpError).message).not.toMatch(/[<>]/);
    expect(JSON.stringify(error)).not.toContain(SECRET);
    expect(String(error)).not.toContain(SECRET);

    const config = await Effect.runPromise(resolveHttpExecutorConfig({ ...fast, baseUrl: server.url }));
    expect(Redacted.isRedacted(config.apiKey)).toBe(true);
    expect(JSON.stringify(config)).not.toContain(SECRET);
    expect(String(config.apiKey)).not.toContain(SECRET);
  });

  it("network errors are typed and retried", async () => {
    server = await startServer((_r, _i, res) => json(res, 200, chatAnswer("x")));
    const url = server.url;
    await server.close();
    server = undefined;
    const error = failure(await run(complete("x"), { ...fast, baseUrl: url, maxRetries: 1 }));
    expect(error).toMatchObject({ _tag: "ExecutorHttpError", attempts: 2 });
    expect((error as ExecutorHttpError).status).toBeUndefined();
    expect((error as ExecutorHttpError).message).toContain("network error");
  });

  it("never has more requests in flight than the concurrency limit", async () => {
    let inFlight = 0;
    let peak = 0;
    server = await startServer(async (_r, i, res) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((r) => setTimeout(r, 30));
      inFlight--;
      json(res, 200, chatAnswer(`answer ${i}`));
    });
    const exit = await run(
      Effect.gen(function* () {
        const executor = yield* Executor;
        return yield* Effect.forEach(
          Array.from({ length: 12 }, (_, i) => i),
          (i) => executor.complete(ask(`q${i}`)),
          { concurrency: "unbounded" },
        );
      }),
      { ...fast, baseUrl: server.url, concurrency: 3 },
    );
    expect(Exit.isSuccess(exit)).toBe(true);
    expect(server.requests).toHaveLength(12);
    expect(peak).toBe(3);
  });

  it("reads URL, key and model from the environment and rejects a missing URL", async () => {
    const config = await Effect.runPromise(
      resolveHttpExecutorConfig({
        env: {
          WORKFLOW_R1_EXECUTOR_URL: "http://127.0.0.1:9/v1",
          WORKFLOW_R1_EXECUTOR_KEY: "k",
          WORKFLOW_R1_EXECUTOR_MODEL: "qwen",
        },
      }),
    );
    expect(config.url).toBe("http://127.0.0.1:9/v1/chat/completions");
    expect(config.model).toBe("qwen");
    expect(config.apiKey && Redacted.value(config.apiKey)).toBe("k");
    const missing = await Effect.runPromiseExit(resolveHttpExecutorConfig({ env: {} }));
    expect(failure(missing)).toMatchObject({ _tag: "ConfigError", field: "executor.baseUrl" });
  });
});

describe("parseRetryAfter", () => {
  it("reads seconds and HTTP dates", () => {
    expect(parseRetryAfter("2")).toBe(2000);
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter("soon")).toBeUndefined();
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:00:03 GMT", now)).toBe(3000);
  });
});

function failure(exit: Exit.Exit<unknown, unknown>): unknown {
  if (Exit.isSuccess(exit)) return undefined;
  const reason = exit.cause.reasons[0];
  return reason !== undefined && "error" in reason ? reason.error : reason;
}
