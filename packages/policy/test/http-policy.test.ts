/**
 * Integration test of HttpPolicy against real llama-server processes on 127.0.0.1, serving a tiny
 * random llama model made by `createTinyLlama`. Build the server first: `tools/build-llama-server.sh`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ContextOverflowError, ModelLoadError, PolicyError } from "@workflow-r1/core";
import {
  createTinyLlama,
  referenceLogprobs as jsReferenceLogprobs,
  type TinyModelInfo,
} from "@workflow-r1/gguf";
import { Effect, Exit, Scope } from "effect";
import { getLlama, type Llama, type LlamaModel, type Token } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpPolicy, type HttpPolicyShape } from "../src/http/index.js";
import { createLlamaCppPolicy } from "../src/llama/policy.js";

const repoRoot = resolve(import.meta.dirname, "../../..");
const serverBin = join(repoRoot, ".cache/llama-server/bin/llama-server");
const haveServer = existsSync(serverBin);
const missingMessage = `llama-server binary not found at ${serverBin}: run tools/build-llama-server.sh`;

if (!haveServer && !process.env.CI) {
  console.warn(`[http-policy.test] SKIPPED: ${missingMessage}`);
}

const freePort = () =>
  new Promise<number>((ok, fail) => {
    const srv = createServer();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      srv.close(() =>
        typeof address === "object" && address ? ok(address.port) : fail(new Error("no port")),
      );
    });
  });

interface RunningServer {
  readonly url: string;
  readonly process: ChildProcess;
  log: string;
}

const startServer = async (modelPath: string): Promise<RunningServer> => {
  const port = await freePort();
  const child = spawn(
    serverBin,
    [
      ...["-m", modelPath, "--host", "127.0.0.1", "--port", String(port)],
      ...["-np", "4", "-c", "2048", "-t", "1", "-tb", "1"],
      // F32 KV cache and no flash attention: logprobs comparable with a reference to ~1e-5.
      ...["-ctk", "f32", "-ctv", "f32", "-fa", "off", "--no-webui", "--no-warmup"],
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const server: RunningServer = { url: `http://127.0.0.1:${port}`, process: child, log: "" };
  const keep = (chunk: Buffer) => {
    server.log = (server.log + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null)
      throw new Error(`llama-server exited with ${child.exitCode}:\n${server.log}`);
    try {
      const response = await fetch(`${server.url}/health`, { signal: AbortSignal.timeout(1_000) });
      if (response.ok) return server;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill("SIGKILL");
  throw new Error(`llama-server did not become healthy in 60 s:\n${server.log}`);
};

const stopServer = async (server: RunningServer | undefined) => {
  if (server === undefined || server.process.exitCode !== null || server.process.signalCode !== null) return;
  const exited = new Promise((r) => server.process.once("exit", r));
  server.process.kill("SIGKILL");
  await exited;
};

/** Build the policy in a scope that the test closes itself. */
const openPolicy = async (
  urls: ReadonlyArray<string>,
  modelPath: string,
  extra: Partial<Parameters<typeof HttpPolicy.make>[0]> = {},
) => {
  const scope = Effect.runSync(Scope.make());
  const policy = await Effect.runPromise(
    Scope.provide(HttpPolicy.make({ urls, tokenizerModelPath: modelPath, backoffMs: 20, ...extra }), scope),
  );
  return { policy, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) };
};

/** log softmax of next-token logits at each position, teacher-forced by node-llama-cpp (F32 KV cache). */
const referenceLogprobs = async (
  model: LlamaModel,
  tokens: ReadonlyArray<number>,
  from: number,
): Promise<number[]> => {
  const context = await model.createContext({
    contextSize: 512,
    sequences: 1,
    flashAttention: false,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
    threads: 1,
  });
  try {
    const sequence = context.getSequence();
    const input = tokens
      .slice(0, -1)
      .map((t, i) =>
        i + 1 >= from ? ([t as Token, { generateNext: { logits: true } }] as const) : (t as Token),
      );
    const outputs = await sequence.controlledEvaluate(input as never);
    const result: number[] = [];
    for (let i = from; i < tokens.length; i++) {
      const logits = outputs[i - 1]?.next.logits;
      if (logits === undefined) throw new Error(`no logits at ${i - 1}`);
      let max = Number.NEGATIVE_INFINITY;
      for (const v of logits.values()) max = Math.max(max, v);
      let sum = 0;
      for (const v of logits.values()) sum += Math.exp(v - max);
      result.push((logits.get(tokens[i] as Token) ?? Number.NaN) - max - Math.log(sum));
    }
    return result;
  } finally {
    await context.dispose();
  }
};

describe.runIf(!haveServer && process.env.CI)("HttpPolicy (llama-server missing)", () => {
  it("needs the llama-server binary in CI", () => {
    throw new Error(missingMessage);
  });
});

describe.runIf(haveServer)("HttpPolicy against llama-server", () => {
  let dir: string;
  let modelPath: string;
  let tiny: TinyModelInfo;
  let serverA: RunningServer | undefined;
  let serverB: RunningServer | undefined;
  let llama: Llama;
  let reference: LlamaModel;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "wr1-http-policy-"));
    tiny = await createTinyLlama({ path: join(dir, "tiny.gguf") });
    modelPath = tiny.path;
    [serverA, serverB] = await Promise.all([startServer(modelPath), startServer(modelPath)]);
    llama = await getLlama({ gpu: false });
    reference = await llama.loadModel({ modelPath });
  }, 120_000);

  afterAll(async () => {
    await Promise.all([stopServer(serverA), stopServer(serverB)]);
    await reference?.dispose();
    await llama?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const prompt = (policy: HttpPolicyShape, text: string) =>
    policy.renderChat([{ role: "user", content: text }], { addGenerationPrompt: true });

  it("samples several sequences concurrently, stops at stop strings, keeps the stop string's tokens", async () => {
    const { policy, close } = await openPolicy([serverA!.url], modelPath);
    try {
      const questions = ["What is 2+2?", "Name a river.", "Who wrote it?", "Where is Paris?"];
      // Unconstrained runs first, with fixed seeds; then the same seeds with a stop string taken from
      // each run's own text must cut the run right after that string's first occurrence.
      const free = await Effect.runPromise(
        Effect.scoped(
          Effect.all(
            questions.map((q, i) =>
              Effect.flatMap(policy.openSequence(prompt(policy, q)), (s) =>
                s.generate(new Int32Array(0), { maxTokens: 24, seed: 100 + i }),
              ),
            ),
            { concurrency: "unbounded" },
          ),
        ),
      );
      const cases = free.map((g) => {
        // The stop string: two visible ASCII characters from the middle of the sampled text.
        const pieces = Array.from(g.tokens, (t) => policy.detokenize([t]));
        const text = pieces.join("");
        const match = /[!-~]{2}/.exec(text.slice(4));
        return { g, text, stop: match ? match[0] : undefined };
      });
      const withStop = cases.filter((c) => c.stop !== undefined);
      expect(withStop.length).toBeGreaterThan(0);
      const stopped = await Effect.runPromise(
        Effect.scoped(
          Effect.all(
            cases.map((c, i) =>
              Effect.flatMap(policy.openSequence(prompt(policy, questions[i]!)), (s) =>
                s.generate(new Int32Array(0), { maxTokens: 24, seed: 100 + i, stop: c.stop ? [c.stop] : [] }),
              ),
            ),
            { concurrency: "unbounded" },
          ),
        ),
      );
      for (const [i, c] of cases.entries()) {
        const s = stopped[i]!;
        expect(s.logprobs.length).toBe(s.tokens.length);
        // Same seed, same prompt: the stopped run is a prefix of the free run, logprobs included.
        expect(Array.from(s.tokens)).toEqual(Array.from(c.g.tokens.subarray(0, s.tokens.length)));
        for (let k = 0; k < s.tokens.length; k++) expect(s.logprobs[k]).toBeCloseTo(c.g.logprobs[k]!, 4);
        if (c.stop === undefined) {
          expect(s.finishReason === "length" || s.finishReason === "eos").toBe(true);
          continue;
        }
        expect(s.finishReason).toBe("stop");
        expect(s.stopString).toBe(c.stop);
        const text = policy.detokenize(s.tokens);
        // The stop string's tokens stay in the output; sampling ended at its first occurrence.
        expect(text).toContain(c.stop);
        expect(policy.detokenize(s.tokens.subarray(0, -1))).not.toContain(c.stop);
      }
      for (const g of free) {
        expect(g.tokens.length).toBe(g.logprobs.length);
        for (const lp of g.logprobs) {
          expect(Number.isFinite(lp)).toBe(true);
          expect(lp).toBeLessThanOrEqual(0);
        }
      }
    } finally {
      await close();
    }
  }, 120_000);

  it("continues a sequence across turns and reuses the server's KV cache for the prefix", async () => {
    const { policy, close } = await openPolicy([serverA!.url], modelPath);
    try {
      await Effect.runPromise(
        Effect.scoped(
          Effect.gen(function* () {
            const first = prompt(policy, "Tell me a story about a long river and a small boat.");
            const sequence = yield* policy.openSequence(first);
            const turn1 = yield* sequence.generate(new Int32Array(0), { maxTokens: 12, seed: 7 });
            const stats1 = sequence.lastStats()!;
            // Earlier requests may have left a shared chat-template prefix in the slot.
            expect(stats1.promptEvaluated + stats1.promptCached).toBe(first.length);
            const observation = policy.renderContinuation([{ role: "tool", content: "ok" }], turn1.tokens);
            const turn2 = yield* sequence.generate(observation, { maxTokens: 12, seed: 8 });
            const stats2 = sequence.lastStats()!;
            const held = first.length + turn1.tokens.length;
            expect(stats2.url).toBe(stats1.url);
            expect(stats2.promptTokens).toBe(held + observation.length);
            // The first turn's prompt is never evaluated again. Without logprob probes only the last
            // sampled token (never decoded) and the observation are new; a probe at position j leaves
            // the slot holding the tokens before j, so up to the last probed position may be redone.
            expect(stats2.promptCached).toBeGreaterThanOrEqual(first.length);
            expect(stats2.promptCached + stats2.promptEvaluated).toBe(held + observation.length);
            if (stats1.probes === 0)
              expect(stats2.promptEvaluated).toBeLessThanOrEqual(observation.length + 1);
            else expect(stats2.promptEvaluated).toBeLessThanOrEqual(observation.length + turn1.tokens.length);
            expect(Array.from(sequence.tokens())).toEqual([
              ...first,
              ...turn1.tokens,
              ...observation,
              ...turn2.tokens,
            ]);
          }),
        ),
      );
    } finally {
      await close();
    }
  }, 120_000);

  it("returns temperature-1 untruncated logprobs that match a teacher-forced reference", async () => {
    const { policy, close } = await openPolicy([serverA!.url], modelPath);
    try {
      const first = prompt(policy, "Which is the largest ocean?");
      // Sample with temperature 0.7 and top-k 5: the logprobs must still be those of the plain model.
      // The first seed whose sample has positions the server leaves out of its logprobs (tokens
      // ending inside a UTF-8 character), so the probe path is checked too.
      const { generation, all, probes } = await Effect.runPromise(
        Effect.scoped(
          Effect.gen(function* () {
            for (let seed = 1; ; seed++) {
              const sequence = yield* policy.openSequence(first);
              const generation = yield* sequence.generate(new Int32Array(0), {
                maxTokens: 32,
                seed,
                temperature: 0.7,
                topK: 5,
              });
              const probes = sequence.lastStats()!.probes;
              if (probes > 0 || seed === 20) return { generation, all: sequence.tokens(), probes };
            }
          }),
        ),
      );
      expect(generation.tokens.length).toBeGreaterThan(0);
      expect(probes).toBeGreaterThan(0);
      const expected = await referenceLogprobs(reference, Array.from(all), first.length);
      expect(expected.length).toBe(generation.logprobs.length);
      for (let i = 0; i < expected.length; i++) expect(generation.logprobs[i]).toBeCloseTo(expected[i]!, 4);
      // And with the package's plain-JS forward of the same GGUF (no ggml at all).
      const js = jsReferenceLogprobs(tiny.file, all, first.length);
      for (let i = 0; i < js.length; i++) expect(generation.logprobs[i]).toBeCloseTo(js[i]!, 4);
      // score (probes of the whole distribution) agrees with the same reference.
      const scored = await Effect.runPromise(policy.score(all, first.length));
      for (let i = 0; i < expected.length; i++) expect(scored[i]).toBeCloseTo(expected[i]!, 4);
    } finally {
      await close();
    }
  }, 120_000);

  it("renders chats and scores exactly like LlamaCppPolicy on the same GGUF", async () => {
    const { policy, close } = await openPolicy([serverA!.url], modelPath);
    const local = await createLlamaCppPolicy({
      modelPath,
      contextSize: 512,
      sequences: 1,
      kvCacheType: "F32",
    });
    try {
      const messages = [
        { role: "system" as const, content: "Answer briefly." },
        { role: "user" as const, content: "Who wrote <|im_end|> Hamlet?" },
      ];
      const prompt = policy.renderChat(messages, { addGenerationPrompt: true });
      expect(Array.from(prompt)).toEqual(
        Array.from(local.renderChat(messages, { addGenerationPrompt: true })),
      );
      const answer = policy.tokenize("Shakespeare");
      const tool = [{ role: "tool" as const, content: "ok" }];
      expect(Array.from(policy.renderContinuation(tool, answer))).toEqual(
        Array.from(local.renderContinuation(tool, answer)),
      );
      expect([...policy.info().endOfTurnTokens]).toEqual([...local.info().endOfTurnTokens]);
      const { generation, all } = await Effect.runPromise(
        Effect.scoped(
          Effect.gen(function* () {
            const sequence = yield* policy.openSequence(prompt);
            const generation = yield* sequence.generate(new Int32Array(0), { maxTokens: 16, seed: 11 });
            return { generation, all: sequence.tokens() };
          }),
        ),
      );
      const scored = await Effect.runPromise(local.score(all, prompt.length));
      for (let i = 0; i < scored.length; i++) expect(generation.logprobs[i]).toBeCloseTo(scored[i]!, 4);
    } finally {
      await local.dispose();
      await close();
    }
  }, 120_000);

  it("reports errors as typed errors: bad score range, context overflow, reload", async () => {
    const { policy, close } = await openPolicy([serverA!.url], modelPath, { scoreProbeLimit: 1000 });
    try {
      const tokens = prompt(policy, "hello there");
      const range = await Effect.runPromise(Effect.flip(policy.score(tokens, 0)));
      expect(range).toBeInstanceOf(PolicyError);
      const tooBig = await Effect.runPromise(Effect.flip(policy.score(tokens, 1)));
      expect(tooBig).toBeInstanceOf(PolicyError);
      expect((tooBig as PolicyError).cause).toMatchObject({ _tag: "LlamaServerUnsupportedError" });
      // A prompt that fills the slot leaves no room to sample.
      const long = new Int32Array(policy.info().contextSize).fill(tokens[1]!);
      const overflow = await Effect.runPromise(Effect.flip(Effect.scoped(policy.openSequence(long))));
      expect(overflow).toBeInstanceOf(ContextOverflowError);
      const gguf = await Effect.runPromise(Effect.flip(policy.reload({ kind: "gguf", path: modelPath })));
      expect(gguf).toBeInstanceOf(ModelLoadError);
      const lora = await Effect.runPromise(
        Effect.flip(policy.reload({ kind: "lora", path: join(dir, "none.gguf") })),
      );
      expect(lora).toBeInstanceOf(ModelLoadError);
      expect(lora.message).toContain("--lora");
      const bytes = await Effect.runPromise(
        Effect.flip(policy.reload({ kind: "lora-bytes", bytes: new Uint8Array(8), label: "step adapter" })),
      );
      expect(bytes).toBeInstanceOf(ModelLoadError);
      expect(bytes.path).toBe("step adapter (8 bytes)");
      expect(bytes.message).toMatch(/only as files/);
    } finally {
      await close();
    }
  }, 60_000);

  it("fails with a typed error when no server passes its health check", async () => {
    const deadPort = await freePort();
    const exit = await Effect.runPromiseExit(
      Effect.scoped(
        HttpPolicy.make({
          urls: [`http://127.0.0.1:${deadPort}`],
          tokenizerModelPath: modelPath,
          healthTimeoutMs: 500,
        }),
      ),
    );
    expect(Exit.isFailure(exit)).toBe(true);
    const error = Exit.isFailure(exit) ? (exit.cause.reasons[0] as { error?: unknown }).error : undefined;
    expect(error).toBeInstanceOf(PolicyError);
    expect((error as PolicyError).cause).toMatchObject({
      _tag: "LlamaServerUnavailableError",
      servers: [{ url: `http://127.0.0.1:${deadPort}` }],
    });
  }, 30_000);

  it("fails over: with one of two servers killed every sequence still samples; with both, a typed error", async () => {
    const { policy, close } = await openPolicy([serverA!.url, serverB!.url], modelPath, {
      strategy: "round-robin",
    });
    try {
      await Effect.runPromise(
        Effect.scoped(
          Effect.gen(function* () {
            const sequences = yield* Effect.all(
              [0, 1, 2, 3].map((i) => policy.openSequence(prompt(policy, `question ${i}`))),
            );
            const urls = new Set(sequences.map((s) => s.binding()!.url));
            expect(urls).toEqual(new Set([serverA!.url, serverB!.url]));
            yield* Effect.all(
              sequences.map((s) => s.generate(new Int32Array(0), { maxTokens: 4, seed: 1 })),
              { concurrency: "unbounded" },
            );
            yield* Effect.promise(() => stopServer(serverB));
            const after = yield* Effect.all(
              sequences.map((s) => s.generate(policy.tokenize(" next"), { maxTokens: 4, seed: 2 })),
              { concurrency: "unbounded" },
            );
            for (const [i, s] of sequences.entries()) {
              expect(after[i]!.tokens.length).toBeGreaterThan(0);
              expect(s.lastStats()!.url).toBe(serverA!.url);
            }
            expect(sequences.some((s) => s.lastStats()!.attempts > 1)).toBe(true);
            const status = policy.servers().find((s) => s.url === serverB!.url)!;
            expect(status.healthy).toBe(false);
            // Health check with B gone still succeeds (A answers) and reports B as down.
            const checked = yield* policy.checkHealth();
            expect(checked.find((s) => s.url === serverB!.url)!.healthy).toBe(false);
            expect(checked.find((s) => s.url === serverA!.url)!.healthy).toBe(true);
            // With both gone, sampling fails with a typed error naming every server.
            yield* Effect.promise(() => stopServer(serverA));
            const down = yield* Effect.flip(sequences[0]!.generate(new Int32Array(0), { maxTokens: 2 }));
            expect(down).toBeInstanceOf(PolicyError);
            expect((down as PolicyError).cause).toMatchObject({ _tag: "LlamaServerUnavailableError" });
            expect((down as PolicyError).cause).toHaveProperty("servers.length", 2);
          }),
        ),
      );
    } finally {
      await close();
    }
  }, 120_000);
});
