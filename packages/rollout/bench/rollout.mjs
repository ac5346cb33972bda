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
import { createTinyLlama, LlamaCppPolicy } from "@workflow-r1/policy";
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

/** Wraps a policy to record each sequence's generations, keyed by prompt, in opening order. */
const recording = (inner, log) => ({
  ...inner,
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

/** Replays recorded generations with no latency at all (no timers, no model). */
const replaying = (inner, log) => {
  const opened = new Map();
  return {
    ...inner,
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

const run = (policyLayer, concurrency) =>
  Effect.runPromise(
    rollout(tasks, { ...OPTIONS, maxConcurrentEpisodes: concurrency }).pipe(
      Effect.provide(Layer.merge(policyLayer, echoEnvironment)),
    ),
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
      `${name.padEnd(34)} ${m.episodesPerSecond.toFixed(2).padStart(8)} episodes/s ${m.sampledTokensPerSecond.toFixed(0).padStart(6)} sampled tok/s  occupancy ${m.meanBatchOccupancy.toFixed(2)} (max ${m.maxBatchOccupancy})  wall ${m.wallMs.toFixed(0)} ms`,
    );
  // Warm-up (model load, first decode) outside the measurements.
  await run(llama(1), 1);
  const one = (await run(llama(1), 1)).metrics;
  row("llama.cpp, 1 concurrent episode", one);
  const log = new Map();
  const recordLayer = Layer.effect(
    Policy,
    Effect.gen(function* () {
      return recording(yield* Policy, log);
    }),
  ).pipe(Layer.provide(llama(16)));
  const sixteen = (await run(recordLayer, 16)).metrics;
  row("llama.cpp, 16 concurrent episodes", sixteen);
  console.log(
    `speed-up 16 vs 1: ${(sixteen.episodesPerSecond / one.episodesPerSecond).toFixed(2)}x episodes/s, ${(sixteen.sampledTokensPerSecond / one.sampledTokensPerSecond).toFixed(2)}x sampled tok/s`,
  );
  // Replay: same generations, zero latency. Best of 5 to keep the estimate from JIT warm-up noise.
  const replayLayer = Layer.effect(
    Policy,
    Effect.gen(function* () {
      return replaying(yield* Policy, log);
    }),
  ).pipe(Layer.provide(llama(1)));
  let best;
  for (let i = 0; i < 5; i++) {
    const m = (await run(replayLayer, 16)).metrics;
    if (best === undefined || m.wallMs < best.wallMs) best = m;
  }
  row("zero-latency replay, 16 concurrent", best);
  console.log(
    `scheduler share of wall time: ${((100 * best.wallMs) / sixteen.wallMs).toFixed(2)}% (${best.wallMs.toFixed(1)} ms replay / ${sixteen.wallMs.toFixed(0)} ms real)`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
