/**
 * One sequence of the policy: its KV cache is kept between turns, so a multi-turn episode
 * appends and continues without re-evaluating what the sequence holds. Each `generate` feeds the
 * pending tokens and the appended ones, then samples token by token through the batch engine
 * (every sequence waiting for a token shares one `llama_decode`).
 */
import {
  ContextOverflowError,
  type Generation,
  PolicyError,
  type PolicySequence,
  type SampleFinishReason,
  type SamplingOptions,
} from "@workflow-r1/core";
import { createRng } from "@workflow-r1/gguf";
import { Effect } from "effect";
import type { LlamaContextSequence, Token } from "node-llama-cpp";
import type { NativeSampler } from "./engine.js";
import { sequenceIdOf } from "./internals.js";
import type { Loaded } from "./loading.js";
import { isTruncating, sampleFromLogits } from "./sampling.js";

export interface SequenceDeps {
  /** The model and context loaded now (a reload replaces them between generations). */
  readonly current: () => Loaded;
  readonly makeSampler: (seq: LlamaContextSequence, seed: number) => NativeSampler;
  readonly policyError: (what: string) => (e: unknown) => PolicyError | ContextOverflowError;
}

export const createSequence = (
  deps: SequenceDeps,
  seq: LlamaContextSequence,
  prompt: Int32Array,
): PolicySequence => {
  const { makeSampler, policyError } = deps;
  // Tokens in the KV cache, and sampled tokens not yet fed back (the last token of each turn).
  const history: number[] = [];
  let pending: number[] = Array.from(prompt);
  let busy = false;
  const vocab = deps.current().info.vocabularySize;
  const id = sequenceIdOf(seq);

  const run = async (append: Int32Array, o: SamplingOptions): Promise<Generation> => {
    if (busy)
      throw new PolicyError({
        message: "generate called again on a sequence before the previous call finished",
      });
    busy = true;
    const loaded = deps.current();
    const { engine, native } = loaded;
    const seed = o.seed ?? Math.floor(Math.random() * 2 ** 31);
    const fast = (o.temperature ?? 1) === 1 && !isTruncating(o, vocab);
    const sampler = makeSampler(seq, seed);
    engine.enter();
    try {
      const input = [...pending, ...append];
      const ctxSize = seq.contextSize;
      if (history.length + input.length > ctxSize)
        throw new ContextOverflowError({
          message: `sequence needs ${history.length + input.length} tokens (${history.length} cached + ${input.length} new), the context holds ${ctxSize} per sequence`,
          needed: history.length + input.length,
          contextSize: ctxSize,
        });
      if (input.length === 0)
        throw new PolicyError({ message: "nothing to evaluate: empty prompt and nothing appended" });
      for (const t of append)
        if (t < 0 || t >= vocab)
          throw new PolicyError({ message: `appended token ${t} is outside the vocabulary (${vocab})` });
      const tokens: number[] = [];
      const logprobs: number[] = [];
      const stops = o.stop ?? [];
      const longestStop = stops.reduce((m, s) => Math.max(m, s.length), 0);
      const rng = createRng(seed);
      let finishReason: SampleFinishReason = "length";
      let stopString: string | undefined;
      let feed = input;
      while (tokens.length < o.maxTokens) {
        // Decode only when the token it samples still fits: a sequence (cached tokens plus the
        // last sampled one, not yet decoded) never exceeds the context, so the learner, whose
        // model context is at least this one, can always score the whole trajectory.
        if (history.length + feed.length + 1 > ctxSize) {
          finishReason = "context";
          break;
        }
        const [r] = await engine.decode(id, history.length, feed, [feed.length - 1], (li) =>
          fast
            ? native.sampleToken(li, sampler, false, true)
            : native.sampleToken(li, sampler, false, false, true),
        );
        history.push(...feed);
        feed = [];
        let token: number;
        let logprob: number;
        if (fast) {
          if (r[0] < 0 || r[2] === undefined)
            throw new PolicyError({ message: "llama.cpp returned no token" });
          token = r[0];
          logprob = Math.log(r[2]);
        } else {
          const flat = r[3];
          if (flat === undefined) throw new PolicyError({ message: "llama.cpp returned no logits" });
          const logits = new Map<number, number>();
          for (let i = 0; i + 1 < flat.length; i += 2) logits.set(flat[i], flat[i + 1]);
          ({ token, logprob } = sampleFromLogits(logits, o, rng.next()));
        }
        tokens.push(token);
        logprobs.push(logprob);
        feed = [token];
        if (loaded.model.isEogToken(token as Token) || loaded.extraStopTokens.includes(token)) {
          finishReason = "eos";
          break;
        }
        if (longestStop > 0) {
          // A stop string spans at most `longestStop` tokens (each token is ≥ 1 byte).
          const tail = loaded.model.detokenize(tokens.slice(-longestStop - 1) as Token[], true);
          const hit = stops.find((s) => tail.includes(s));
          if (hit !== undefined) {
            finishReason = "stop";
            stopString = hit;
            break;
          }
        }
      }
      pending = feed;
      return {
        tokens: Int32Array.from(tokens),
        logprobs: Float32Array.from(logprobs),
        finishReason,
        ...(stopString === undefined ? {} : { stopString }),
      };
    } finally {
      engine.leave();
      sampler.dispose();
      busy = false;
    }
  };
  return {
    tokens: () => Int32Array.from([...history, ...pending]),
    generate: (append, options) =>
      Effect.tryPromise({ try: () => run(append, options), catch: policyError("generate") }),
  };
};
