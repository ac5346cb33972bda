/**
 * Executor outages (issue 17, point 8): the start-up check, failure counters per episode and per
 * environment, the consecutive-failure stop, and the time limits / retries from the options — all
 * against real HTTP servers on 127.0.0.1.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  Environment,
  EnvironmentError,
  type EnvironmentShape,
  type EpisodeOutcome,
  type StepResult,
} from "@workflow-r1/core";
import { Cause, Effect, Exit, Layer } from "effect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  Bm25Retriever,
  ExecutorUnavailableError,
  ExecutorUnreachableError,
  ensureExecutorAvailable,
  executorMetrics,
  executorStatsOf,
  HttpExecutor,
  httpExecutorDefaults,
  resolveHttpExecutorConfig,
  WorkflowR1Env,
  type WorkflowR1EnvConfig,
  workflowR1Plugin,
} from "../src/index.js";
import { chatAnswer, json, type Recorded, startServer, type TestServer } from "./executors-server.js";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

let tmp = "";
let corpusPath = "";
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), "env-qa-executor-failures-"));
  corpusPath = path.join(tmp, "corpus.jsonl");
  await writeFile(
    corpusPath,
    JSON.stringify({ id: "0", contents: '"Paris"\nParis is the capital of France.' }),
  );
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const TASK = { id: "t1", question: "What is the capital of France?", goldenAnswers: ["Paris"] };
const ASK = "<think>ask</think><tool>AnswerGenerate: What is the capital of France?</tool>";
const GOOD = "<think>Paris is the capital.</think><answer>Paris</answer>";

/** A port with nothing behind it: a server that was started, then closed. */
const closedPort = async (): Promise<string> => {
  const s = await startServer((_r, _i, res) => json(res, 200, {}));
  await s.close();
  return `${s.url}/v1`;
};

const isModels = (r: Recorded) => r.url.endsWith("/models");

const failureOf = (exit: Exit.Exit<unknown, unknown>): unknown => {
  if (Exit.isSuccess(exit)) return undefined;
  const reason = exit.cause.reasons[0];
  return reason !== undefined && "error" in reason ? reason.error : Cause.squash(exit.cause);
};

/** WorkflowR1Env over the real HttpExecutor at `url` and a tiny BM25 index. */
const envLayer = (
  url: string,
  http: Parameters<typeof HttpExecutor.layer>[0] = {},
  config: WorkflowR1EnvConfig = {},
) =>
  WorkflowR1Env.layer({ operators: ["AnswerGenerate", "Search"], ...config }).pipe(
    Layer.provide(
      Layer.mergeAll(
        HttpExecutor.layer({ baseUrl: url, model: "m", baseDelayMs: 1, maxRetries: 0, env: {}, ...http }),
        Bm25Retriever.layer({ documents: [{ id: "0", contents: '"Paris"\nParis is in France.' }] }),
      ),
    ),
  );

const withEnv = <A, E>(
  layer: Layer.Layer<Environment, unknown>,
  body: (env: EnvironmentShape) => Effect.Effect<A, E>,
) =>
  Effect.runPromiseExit(
    Effect.gen(function* () {
      const env = yield* Environment;
      return yield* body(env);
    }).pipe(Effect.provide(layer)),
  );

/** Build the plugin's environment and drop it (to see whether building fails). */
const buildPlugin = (options: Record<string, unknown>) =>
  Effect.runPromiseExit(
    Effect.gen(function* () {
      yield* Environment;
    }).pipe(Effect.provide(workflowR1Plugin.layer(options))),
  );

describe("the start-up check", () => {
  it("a closed port fails HttpExecutor.check with an ExecutorUnreachableError naming the URL and the cause", async () => {
    const url = await closedPort();
    const error = failureOf(
      await Effect.runPromiseExit(HttpExecutor.check({ baseUrl: url, model: "m", env: {} })),
    );
    expect(error).toBeInstanceOf(ExecutorUnreachableError);
    expect(error).toMatchObject({ url, reason: "network" });
    const message = (error as ExecutorUnreachableError).message;
    expect(message).toContain(url);
    expect(message).toMatch(/ECONNREFUSED|fetch failed/);
  });

  it("the workflow-r1 plugin is not built when its executor does not answer", async () => {
    const url = await closedPort();
    const exit = await buildPlugin({ executor: { baseUrl: url, model: "m", env: {} }, corpusPath });
    const error = failureOf(exit);
    expect(error).toBeInstanceOf(EnvironmentError);
    expect((error as EnvironmentError).message).toContain("environment.options.executor");
    expect((error as EnvironmentError).message).toContain(url);
    expect((error as EnvironmentError).cause).toBeInstanceOf(ExecutorUnreachableError);
  });

  it("WorkflowR1Env.layer checks when asked (checkExecutor: true)", async () => {
    const url = await closedPort();
    const exit = await withEnv(envLayer(url, {}, { checkExecutor: true }), () => Effect.void);
    expect((failureOf(exit) as EnvironmentError).cause).toBeInstanceOf(ExecutorUnreachableError);
    // Without the option the layer is built as before (the executor is only called by operators).
    expect(Exit.isSuccess(await withEnv(envLayer(url), () => Effect.void))).toBe(true);
  });

  it("passes on GET /models; without that route, a 1-token completion decides", async () => {
    server = await startServer((req, _i, res) =>
      isModels(req) ? json(res, 200, { object: "list", data: [{ id: "m" }] }) : json(res, 500, "no"),
    );
    expect(
      Exit.isSuccess(
        await Effect.runPromiseExit(HttpExecutor.check({ baseUrl: `${server.url}/v1`, model: "m", env: {} })),
      ),
    ).toBe(true);
    expect(server.requests.map((r) => r.url)).toEqual(["/v1/models"]);
    await server.close();

    server = await startServer((req, _i, res) =>
      isModels(req) ? json(res, 404, { error: "no route" }) : json(res, 200, chatAnswer("O", "length")),
    );
    expect(
      Exit.isSuccess(
        await Effect.runPromiseExit(HttpExecutor.check({ baseUrl: server.url, model: "m", env: {} })),
      ),
    ).toBe(true);
    expect(server.requests.map((r) => r.url)).toEqual(["/models", "/chat/completions"]);
    expect(server.requests[1]?.body).toMatchObject({ model: "m", max_tokens: 1 });
  });

  it("an HTTP 500, a garbage answer and a hung server fail the check with the cause", async () => {
    server = await startServer((_r, _i, res) => json(res, 500, { error: "model not loaded" }));
    const e500 = failureOf(
      await Effect.runPromiseExit(HttpExecutor.check({ baseUrl: server.url, model: "m", env: {} })),
    );
    expect(e500).toMatchObject({ _tag: "ExecutorUnreachableError", reason: "status", status: 500 });
    expect((e500 as ExecutorUnreachableError).message).toContain("model not loaded");
    await server.close();

    server = await startServer((_r, _i, res) => json(res, 200, "<html>a router login page</html>"));
    const garbage = failureOf(
      await Effect.runPromiseExit(HttpExecutor.check({ baseUrl: server.url, model: "m", env: {} })),
    );
    expect(garbage).toMatchObject({ _tag: "ExecutorUnreachableError", reason: "body" });
    await server.close();

    server = await startServer(() => new Promise(() => {}));
    const started = Date.now();
    const hung = failureOf(
      await Effect.runPromiseExit(
        HttpExecutor.check({ baseUrl: server.url, model: "m", env: {}, probeTimeoutMs: 150 }),
      ),
    );
    expect(hung).toMatchObject({ _tag: "ExecutorUnreachableError", reason: "timeout" });
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});

describe("counting executor failures", () => {
  it("an HTTP 500 is counted per episode and in total, and the agent still sees the error", async () => {
    server = await startServer((req, _i, res) =>
      (req.body as { messages: { content: string }[] }).messages[0]?.content.includes("France")
        ? json(res, 500, { error: "overloaded" })
        : json(res, 200, chatAnswer("<think>t</think><answer>x</answer>")),
    );
    const exit = await withEnv(envLayer(server.url), (env) =>
      Effect.gen(function* () {
        const before = executorStatsOf(env);
        const episode = yield* env.reset(TASK);
        const failed = yield* episode.step(ASK);
        const ok = yield* episode.step("<think>again</think><tool>AnswerGenerate: something else</tool>");
        const done = (yield* episode.step(GOOD)) as StepResult & EpisodeOutcome;
        return { before, failed, ok, done, after: executorStatsOf(env) };
      }),
    );
    if (!Exit.isSuccess(exit)) throw Cause.squash(exit.cause);
    const { before, failed, ok, done, after } = exit.value;
    expect(failed._tag === "Observation" && failed.observation).toContain(
      "Error: operator AnswerGenerate failed",
    );
    expect(failed._tag === "Observation" && failed.observation).toContain("HTTP 500");
    expect(ok._tag === "Observation" && ok.observation).toContain("Answer: x");
    // Per episode, next to the reward parts (the reward itself is untouched).
    expect(done).toMatchObject({ reward: 1, rewardParts: { executorCalls: 2, executorFailures: 1 } });
    expect(before).toMatchObject({ calls: 0, failures: 0, consecutiveFailures: 0, unavailable: false });
    expect(after).toMatchObject({
      url: server.url,
      calls: 2,
      failures: 1,
      consecutiveFailures: 0,
      maxConsecutiveFailures: 8,
      unavailable: false,
    });
    expect(after?.lastError).toContain("HTTP 500");
    expect(executorMetrics(after!, before, "eval/")).toEqual({
      "eval/executor/calls": 2,
      "eval/executor/failures": 1,
      "eval/executor/consecutive_failures": 0,
    });
  });

  it("a garbage body is counted as a failure, in episodes ended early too", async () => {
    server = await startServer((_r, _i, res) => json(res, 200, "this is not json"));
    const exit = await withEnv(envLayer(server.url), (env) =>
      Effect.gen(function* () {
        const episode = yield* env.reset(TASK);
        const step = yield* episode.step(ASK);
        const outcome = yield* episode.finish("max-turns");
        return { step, outcome, stats: executorStatsOf(env) };
      }),
    );
    if (!Exit.isSuccess(exit)) throw Cause.squash(exit.cause);
    expect(exit.value.step._tag === "Observation" && exit.value.step.observation).toContain("not JSON");
    expect(exit.value.outcome.rewardParts).toMatchObject({ executorCalls: 1, executorFailures: 1 });
    expect(exit.value.stats).toMatchObject({ calls: 1, failures: 1, consecutiveFailures: 1 });
    expect(exit.value.stats?.lastError).toContain("not JSON");
  });
});

describe("the consecutive-failure stop", () => {
  it("stops after N failures in a row with ExecutorUnavailableError; a success in between resets the count", async () => {
    // Requests 0-1 fail, 2 succeeds, 3-5 fail: with N = 3 the stop comes at request 5, not at 3.
    server = await startServer((_r, i, res) =>
      i === 2
        ? json(res, 200, chatAnswer("<think>t</think><answer>ok</answer>"))
        : json(res, 503, { error: `down ${i}` }),
    );
    const exit = await withEnv(envLayer(server.url, {}, { executor: { maxConsecutiveFailures: 3 } }), (env) =>
      Effect.gen(function* () {
        const episode = yield* env.reset(TASK);
        const steps: StepResult[] = [];
        for (let i = 0; i < 5; i++) steps.push(yield* episode.step(ASK));
        const stopped = yield* Effect.exit(episode.step(ASK));
        const finish = yield* Effect.exit(episode.finish("max-turns"));
        const reset = yield* Effect.exit(env.reset(TASK));
        const ensured = yield* Effect.exit(ensureExecutorAvailable(env));
        return { steps, stopped, finish, reset, ensured, stats: executorStatsOf(env) };
      }),
    );
    if (!Exit.isSuccess(exit)) throw Cause.squash(exit.cause);
    const { steps, stopped, finish, reset, ensured, stats } = exit.value;
    expect(steps.map((s) => s._tag === "Observation" && /Error: operator/.test(s.observation))).toEqual([
      true,
      true,
      false,
      true,
      true,
    ]);
    expect(server!.requests).toHaveLength(6);
    // The sixth call was the third failure in a row: the step fails instead of observing it.
    const stop = failureOf(stopped) as EnvironmentError;
    expect(stop).toBeInstanceOf(EnvironmentError);
    expect(stop.cause).toBeInstanceOf(ExecutorUnavailableError);
    expect(stop.cause).toMatchObject({ url: server!.url, consecutiveFailures: 3 });
    expect(stop.message).toContain(server!.url);
    expect(stop.message).toContain("3 calls failed in a row");
    expect(stop.message).toContain("HTTP 503");
    expect(stop.message).toContain("down 5");
    // Everything after the stop fails at once, without reaching the server.
    for (const later of [finish, reset])
      expect((failureOf(later) as EnvironmentError).cause).toBeInstanceOf(ExecutorUnavailableError);
    expect(failureOf(ensured)).toBeInstanceOf(ExecutorUnavailableError);
    expect(server!.requests).toHaveLength(6);
    expect(stats).toMatchObject({ calls: 6, failures: 5, consecutiveFailures: 3, unavailable: true });
  });

  it("maxConsecutiveFailures 0 never stops, and bad values are rejected", async () => {
    server = await startServer((_r, _i, res) => json(res, 503, { error: "down" }));
    const exit = await withEnv(envLayer(server.url, {}, { executor: { maxConsecutiveFailures: 0 } }), (env) =>
      Effect.gen(function* () {
        const episode = yield* env.reset(TASK);
        for (let i = 0; i < 10; i++) yield* episode.step(ASK);
        yield* ensureExecutorAvailable(env);
        return executorStatsOf(env);
      }),
    );
    if (!Exit.isSuccess(exit)) throw Cause.squash(exit.cause);
    expect(exit.value).toMatchObject({
      calls: 10,
      failures: 10,
      consecutiveFailures: 10,
      unavailable: false,
    });
    for (const bad of [-1, 1.5, "8"]) {
      const resolved = await Effect.runPromiseExit(
        WorkflowR1Env.resolveConfig({ executor: { maxConsecutiveFailures: bad as number } }),
      );
      expect((failureOf(resolved) as EnvironmentError).message).toContain("executor.maxConsecutiveFailures");
    }
  });
});

describe("time limits and retries from the options", () => {
  it("defaults cap a hung executor at about 2 minutes per call", async () => {
    const config = await Effect.runPromise(
      resolveHttpExecutorConfig({ baseUrl: "http://127.0.0.1:1/v1", model: "m", env: {} }),
    );
    let backoff = 0;
    for (let retry = 0; retry < config.maxRetries; retry++)
      backoff += Math.min(config.maxDelayMs, config.baseDelayMs * 2 ** retry * 1.2);
    const worst = config.timeoutMs * (config.maxRetries + 1) + backoff;
    expect(worst).toBeLessThanOrEqual(125_000);
    expect(worst).toBeGreaterThanOrEqual(90_000);
    expect(httpExecutorDefaults).toMatchObject({
      timeoutMs: config.timeoutMs,
      maxRetries: config.maxRetries,
    });
  });

  it("timeoutMs and maxRetries from the plugin options: a hung server costs timeoutMs × (1 + maxRetries)", async () => {
    // /models answers (the start-up check passes), completions hang.
    server = await startServer((req, _i, res) =>
      isModels(req) ? json(res, 200, { object: "list", data: [] }) : new Promise(() => {}),
    );
    const started = Date.now();
    const exit = await Effect.runPromiseExit(
      Effect.gen(function* () {
        const env = yield* Environment;
        const episode = yield* env.reset(TASK);
        const step = yield* episode.step(ASK);
        return { step, stats: executorStatsOf(env) };
      }).pipe(
        Effect.provide(
          workflowR1Plugin.layer({
            executor: {
              baseUrl: `${server.url}/v1`,
              model: "m",
              env: {},
              timeoutMs: 120,
              maxRetries: 1,
              baseDelayMs: 1,
            },
            corpusPath,
            operators: ["AnswerGenerate"],
          }),
        ),
      ),
    );
    const elapsed = Date.now() - started;
    if (!Exit.isSuccess(exit)) throw Cause.squash(exit.cause);
    expect(exit.value.step._tag === "Observation" && exit.value.step.observation).toContain(
      "no answer within 120 ms",
    );
    expect(exit.value.stats).toMatchObject({ calls: 1, failures: 1 });
    expect(server.requests.filter((r) => r.url.endsWith("/chat/completions"))).toHaveLength(2);
    expect(elapsed).toBeLessThan(3_000);
  });

  it("rejects bad time limits and retry counts with the field name", async () => {
    for (const [field, value] of [
      ["timeoutMs", "30s"],
      ["timeoutMs", 0],
      ["timeoutMs", 1.5],
      ["maxRetries", -1],
      ["maxRetries", 2.5],
      ["probeTimeoutMs", 0],
    ] as const) {
      const exit = await Effect.runPromiseExit(
        resolveHttpExecutorConfig({ baseUrl: "http://127.0.0.1:1/v1", model: "m", env: {}, [field]: value }),
      );
      expect(failureOf(exit)).toMatchObject({ _tag: "ConfigError", field: `executor.${field}` });
      expect((failureOf(exit) as Error).message).toContain(JSON.stringify(value));
    }
    const plugin = await buildPlugin({
      executor: { baseUrl: "http://127.0.0.1:1/v1", model: "m", timeoutMs: -5 },
      corpusPath,
    });
    expect((failureOf(plugin) as EnvironmentError).message).toContain("environment.options.executor");
    expect((failureOf(plugin) as EnvironmentError).message).toContain("executor.timeoutMs");
    const notHttp = await Effect.runPromiseExit(
      resolveHttpExecutorConfig({ baseUrl: "localhost:8000", model: "m", env: {} }),
    );
    expect(failureOf(notHttp)).toMatchObject({ _tag: "ConfigError", field: "executor.baseUrl" });
  });
});
