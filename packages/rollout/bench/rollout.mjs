// Rollout throughput on a tiny llama.cpp model (CPU): episodes/s with 1 vs 16 concurrent episodes,
// and the share of wall time the scheduler itself costs.
//
// Scheduler cost method: the 16-episode run records every generation the real policy returned
// (tokens, logprobs, finish reason). The same rollout is then replayed against a zero-latency
// scripted policy that returns those recorded generations instantly (same tasks, same number of
// generate calls, same tokens, same environment, the real tokenizer and chat template). The replay's
// wall time is what the scheduler, trajectory assembly, prefix checks, environment and metrics cost
// without any model time; its ratio to the real run's wall time is the scheduler's share.
//
// Usage: npm run bench -w @workflow-r1/rollout  (env BENCH_EPISODES, BENCH_THREADS to change sizes)
import { mkdtemp, rm } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { Environment, Policy } from "@workflow-r1/core";
import { createTinyLlama } from "@workflow-r1/gguf";
import { LlamaCppPolicy } from "@workflow-r1/policy";
import { rollout } from "@workflow-r1/rollout";
import { Effect, Layer } from "effect";

const EPISODES = Number(process.env.BENCH_EPISODES ?? 64);
const THREADS = Number(process.env.BENCH_THREADS ?? 1);
const GROUP = 4;
const OPTIONS = { groupSize: GROUP, maxTurns: 3, maxTokens: 48, maxTokensPerTurn: 16 };

/** Three turns whatever the agent writes; operators answer instantly. */
const echoEnvironment = Layer.succeed(Environment, {
  name: "echo",
  stopSequences: ["</tool>"],
  reset: (task) =>
    Effect.sync(() => {
      let taken = 0;
      return {
        messages: [
          { role: "system", content: "Answer with tools." },
          { role: "user", content: task.question },
        ],
        step: (action) =>
          Effect.sync(() =>
            ++taken >= 3
              ? { _tag: "Done", operatorCalls: [], reward: 0, rewardParts: {}, finishReason: "done" }
              : {
                  _tag: "Observation",
                  observation: `seen ${action.length} chars`,
                  operatorCalls: [
                    { operator: "echo", input: action.slice(0, 8), output: "ok", latencyMs: 0 },
                  ],
                },
          ),
        finish: (reason) => Effect.succeed({ reward: 0, rewardParts: {}, finishReason: reason }),
      };
    }),
});

const tasks = Array.from({ length: EPISODES / GROUP }, (_, i) => ({
  id: `t${i}`,
  question: `What is item ${i}?`,
}));

/**
 * Wraps a policy to record each sequence's generations (keyed by prompt, in opening order) and the
 * results of chat-template rendering and detokenization (keyed by their arguments).
 */
const memo =
  (log, name, f, key) =>
  (...args) => {
    const k = `${name}:${key(...args)}`;
    let v = log.get(k);
    if (v === undefined) {
      v = f(...args);
      log.set(k, v);
    }
    return v;
  };
const renderKeys = {
  renderChat: (m, o) => JSON.stringify([m, o]),
  renderContinuation: (m, last) => JSON.stringify([m, Array.from(last)]),
  detokenize: (t) => Array.from(t).join(","),
};
const recording = (inner, log) => ({
  ...inner,
  renderChat: memo(log, "renderChat", inner.renderChat, renderKeys.renderChat),
  renderContinuation: memo(
    log,
    "renderContinuation",
    inner.renderContinuation,
    renderKeys.renderContinuation,
  ),
  detokenize: memo(log, "detokenize", inner.detokenize, renderKeys.detokenize),
  openSequence: (prompt) =>
    Effect.map(inner.openSequence(prompt), (seq) => {
      const key = prompt.join(",");
      const calls = [];
      (log.get(key) ?? log.set(key, []).get(key)).push(calls);
      return {
        tokens: seq.tokens,
        generate: (append, options) =>
          Effect.tap(seq.generate(append, options), (g) => Effect.sync(() => calls.push(g))),
      };
    }),
});

/**
 * Replays recorded generations with no latency at all (no timers, no model). With `cachedRendering`
 * the chat template and detokenizer results are also replayed from the recording, so the run costs
 * only the scheduler and trajectory assembly.
 */
const replaying = (inner, log, cachedRendering) => {
  const opened = new Map();
  const cached =
    (name) =>
    (...args) =>
      log.get(`${name}:${renderKeys[name](...args)}`) ?? inner[name](...args);
  return {
    ...inner,
    ...(cachedRendering
      ? {
          renderChat: cached("renderChat"),
          renderContinuation: cached("renderContinuation"),
          detokenize: cached("detokenize"),
        }
      : {}),
    openSequence: (prompt) =>
      Effect.sync(() => {
        const key = prompt.join(",");
        const n = opened.get(key) ?? 0;
        opened.set(key, n + 1);
        const calls = log.get(key)[n];
        const held = Array.from(prompt);
        let call = 0;
        return {
          tokens: () => Int32Array.from(held),
          generate: (append) =>
            Effect.sync(() => {
              const g = calls[call++];
              held.push(...append, ...g.tokens);
              return g;
            }),
        };
      }),
  };
};

const REPS = Number(process.env.BENCH_REPS ?? 5);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** One rollout on the given policy service (the environment is the echo one). */
const run = (policy, concurrency) =>
  rollout(tasks, { ...OPTIONS, maxConcurrentEpisodes: concurrency }).pipe(
    Effect.provide(echoEnvironment),
    Effect.provideService(Policy, policy),
    Effect.map((r) => r.metrics),
  );

const dir = await mkdtemp(join(tmpdir(), "rollout-bench-"));
try {
  const model = await createTinyLlama({
    path: join(dir, "tiny.gguf"),
    vocab: 300,
    dim: 64,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    ffn: 128,
    seed: 7,
  });
  const llama = (sequences) =>
    LlamaCppPolicy.layer({
      modelPath: model.path,
      gpu: false,
      contextSize: 512,
      sequences,
      threads: THREADS,
    });
  console.log(
    `machine: ${availableParallelism()} cores, CPU only; llama.cpp threads ${THREADS}; ${EPISODES} episodes (G=${GROUP}), ≤3 turns, ≤48 sampled tokens each`,
  );
  const row = (name, m) =>
    console.log(
      `${name.padEnd(46)} ${m.episodesPerSecond.toFixed(2).padStart(8)} episodes/s ${m.sampledTokensPerSecond.toFixed(0).padStart(6)} sampled tok/s  occupancy ${m.meanBatchOccupancy.toFixed(2)} (max ${m.maxBatchOccupancy})  wall ${m.wallMs.toFixed(0)} ms`,
    );
  // One loaded policy (16 sequences) for every run; 1 vs 16 concurrent episodes alternate so that
  // load from other processes on the machine hits both alike. Medians over REPS runs.
  const results = await Effect.runPromise(
    Effect.gen(function* () {
      const policy = yield* Policy;
      yield* run(policy, 16); // warm-up: first decodes, JIT
      const one = [];
      const sixteen = [];
      const replay = [];
      for (let r = 0; r < REPS; r++) {
        one.push(yield* run(policy, 1));
        const log = new Map();
        const real = yield* run(recording(policy, log), 16);
        sixteen.push(real);
        // The same generations again, with zero latency: what the scheduler costs on its own.
        const zero = yield* run(replaying(policy, log, true), 16);
        const rendered = yield* run(replaying(policy, log, false), 16);
        replay.push({ real, zero, rendered });
      }
      return { one, sixteen, replay };
    }).pipe(Effect.provide(llama(16))),
  );
  const pick = (ms) => {
    const m = median(ms.map((x) => x.episodesPerSecond));
    return ms.find((x) => x.episodesPerSecond === m);
  };
  const one = pick(results.one);
  const sixteen = pick(results.sixteen);
  row(`llama.cpp, 1 concurrent episode (median of ${REPS})`, one);
  row(`llama.cpp, 16 concurrent episodes (median of ${REPS})`, sixteen);
  console.log(
    `speed-up 16 vs 1: ${(sixteen.episodesPerSecond / one.episodesPerSecond).toFixed(2)}x episodes/s, ${(sixteen.sampledTokensPerSecond / one.sampledTokensPerSecond).toFixed(2)}x sampled tok/s`,
  );
  const report = (label, which) => {
    const shares = results.replay.map((r) => r[which].wallMs / r.real.wallMs);
    const mid = results.replay[shares.indexOf(median(shares))];
    row(`zero-latency replay, ${label}`, mid[which]);
    console.log(
      `  share of the real run's wall time: median ${(100 * median(shares)).toFixed(2)}% (${mid[which].wallMs.toFixed(1)} ms / ${mid.real.wallMs.toFixed(0)} ms); all runs: ${shares.map((x) => `${(100 * x).toFixed(1)}%`).join(" ")}`,
    );
  };
  report("scheduler + assembly only", "zero");
  report("+ chat template rendering", "rendered");
} finally {
  await rm(dir, { recursive: true, force: true });
}
