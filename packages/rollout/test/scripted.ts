/**
 * Scripted Policy and Environment layers for unit tests of the scheduler: one character is one
 * token, `generate` returns predetermined text with deterministic logprobs after an artificial
 * delay, and everything the scheduler does is recorded.
 */
import {
  type ChatMessage,
  ContextOverflowError,
  Environment,
  EnvironmentError,
  type Episode,
  type Generation,
  Policy,
  PolicyError,
  type PolicySequence,
  type SampleFinishReason,
  type SamplingOptions,
  type Task,
} from "@workflow-r1/core";
import { Effect, Layer } from "effect";

export const EOT = 1;
const encode = (text: string): number[] => Array.from(text, (c) => c.codePointAt(0)!);
export const decode = (tokens: ArrayLike<number>): string =>
  Array.from(tokens, (t) => (t === EOT ? "<eot>" : String.fromCodePoint(t))).join("");
/** Deterministic "sampler" logprob of a token at a position of a generation. */
export const logprobOf = (token: number, i: number): number => -((token % 7) + 1) / 10 - i / 1000;

export type ScriptReply =
  | { readonly text: string; readonly finishReason?: SampleFinishReason; readonly eot?: boolean }
  | { readonly fail: "policy" | "overflow" };

export interface ScriptContext {
  /** The decoded prompt the sequence was opened on. */
  readonly prompt: string;
  /** 0 for the first generate on the sequence. */
  readonly call: number;
  readonly options: SamplingOptions;
}

export interface ScriptedPolicyOptions {
  readonly script: (ctx: ScriptContext) => ScriptReply;
  /** Milliseconds each generate takes (0: none, not even a timer). */
  readonly delayMs?: number | ((ctx: ScriptContext) => number);
  /** Drop the last token from `tokens()` (to break token-in-token-out on purpose). */
  readonly lieAboutTokens?: boolean;
  /** Event log to push to (share one with the environment to see the interleaving). */
  readonly events?: string[];
}

export interface GenerateRecord {
  readonly sequence: number;
  readonly append: Int32Array;
  readonly generation: Generation;
}

export const scriptedPolicy = (config: ScriptedPolicyOptions) => {
  const stats = {
    open: 0,
    maxOpen: 0,
    inFlight: 0,
    maxInFlight: 0,
    generateCalls: 0,
    events: config.events ?? [],
  };
  const generations: GenerateRecord[] = [];
  let nextId = 0;
  const render = (messages: ReadonlyArray<ChatMessage>): number[] =>
    messages.flatMap((m) => [...encode(`[${m.role}]${m.content}`), EOT]);
  const shape = {
    info: () => ({
      modelPath: "scripted",
      contextSize: 4096,
      vocabularySize: 0x110000,
      endOfTurnTokens: [EOT],
    }),
    tokenize: (text: string) => Int32Array.from(encode(text)),
    detokenize: (tokens: ArrayLike<number>) => decode(tokens),
    renderChat: (messages: ReadonlyArray<ChatMessage>, o?: { readonly addGenerationPrompt?: boolean }) =>
      Int32Array.from([...render(messages), ...(o?.addGenerationPrompt ? encode("[assistant]") : [])]),
    renderContinuation: (messages: ReadonlyArray<ChatMessage>, last: ArrayLike<number>) =>
      Int32Array.from([
        ...(last[last.length - 1] === EOT ? [] : [EOT]),
        ...render(messages),
        ...encode("[assistant]"),
      ]),
    openSequence: (prompt: Int32Array) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          stats.open++;
          stats.maxOpen = Math.max(stats.maxOpen, stats.open);
          const id = nextId++;
          const held: number[] = Array.from(prompt);
          const promptText = decode(prompt);
          let call = 0;
          const sequence: PolicySequence = {
            tokens: () => Int32Array.from(config.lieAboutTokens ? held.slice(0, -1) : held),
            generate: (append: Int32Array, options: SamplingOptions) => {
              const ctx: ScriptContext = { prompt: promptText, call: call++, options };
              const delay =
                typeof config.delayMs === "function" ? config.delayMs(ctx) : (config.delayMs ?? 0);
              const body = Effect.gen(function* () {
                if (delay > 0) yield* Effect.sleep(delay);
                const reply = config.script(ctx);
                if ("fail" in reply) {
                  if (reply.fail === "overflow")
                    return yield* new ContextOverflowError({
                      message: "scripted overflow",
                      needed: 5000,
                      contextSize: 4096,
                    });
                  return yield* new PolicyError({ message: "scripted policy failure" });
                }
                let tokens = encode(reply.text);
                let finishReason: SampleFinishReason = reply.finishReason ?? (reply.eot ? "eos" : "stop");
                if (reply.eot) tokens.push(EOT);
                if (tokens.length > options.maxTokens) {
                  tokens = tokens.slice(0, options.maxTokens);
                  finishReason = "length";
                }
                held.push(...append, ...tokens);
                const generation: Generation = {
                  tokens: Int32Array.from(tokens),
                  logprobs: Float32Array.from(tokens, logprobOf),
                  finishReason,
                };
                generations.push({ sequence: id, append: append.slice(), generation });
                return generation;
              });
              return Effect.acquireUseRelease(
                Effect.sync(() => {
                  stats.generateCalls++;
                  stats.inFlight++;
                  stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
                  stats.events.push(`gen-start ${id}`);
                }),
                () => body,
                () =>
                  Effect.sync(() => {
                    stats.inFlight--;
                    stats.events.push(`gen-end ${id}`);
                  }),
              );
            },
          };
          return sequence;
        }),
        () => Effect.sync(() => stats.open--),
      ),
    score: () => Effect.die("score is not scripted"),
    reload: () => Effect.void,
  };
  return { layer: Layer.succeed(Policy, shape), stats, generations };
};

export interface ScriptedEnvOptions {
  /** Milliseconds an operator call takes for this action (default 0). */
  readonly operatorMs?: (task: Task, action: string) => number;
  readonly events?: string[];
}

/**
 * A toy protocol: `<tool>q</tool>` calls the `search` operator and shows `result(q)`; an action with
 * `<answer>` ends the episode with reward 1 when it equals the task's golden answer. Tasks whose
 * question starts with "reset-fail" / "step-fail" fail in reset / step.
 */
export const scriptedEnvironment = (config: ScriptedEnvOptions = {}) => {
  const stats = {
    operatorsRunning: 0,
    maxOperatorsRunning: 0,
    finishes: [] as string[],
    events: config.events ?? [],
  };
  const shape = {
    name: "scripted",
    stopSequences: ["</tool>", "</answer>"],
    reset: (task: Task) =>
      Effect.gen(function* () {
        if (task.question.startsWith("reset-fail"))
          return yield* new EnvironmentError({ message: "scripted reset failure" });
        const episode: Episode = {
          messages: [
            { role: "system", content: "sys" },
            { role: "user", content: task.question },
          ],
          step: (action: string) =>
            Effect.gen(function* () {
              if (task.question.startsWith("step-fail"))
                return yield* new EnvironmentError({ message: "scripted step failure" });
              const answer = /<answer>(.*?)<\/answer>/.exec(action);
              if (answer) {
                const em = task.goldenAnswers?.includes(answer[1]!) ? 1 : 0;
                return {
                  _tag: "Done" as const,
                  operatorCalls: [],
                  reward: em,
                  rewardParts: { em },
                  finishReason: "answer" as const,
                };
              }
              const query = /<tool>(.*?)<\/tool>/.exec(action)?.[1] ?? "";
              const ms = config.operatorMs?.(task, action) ?? 0;
              stats.operatorsRunning++;
              stats.maxOperatorsRunning = Math.max(stats.maxOperatorsRunning, stats.operatorsRunning);
              stats.events.push(`op-start ${task.id}`);
              yield* Effect.sleep(ms).pipe(
                Effect.ensuring(
                  Effect.sync(() => {
                    stats.operatorsRunning--;
                    stats.events.push(`op-end ${task.id}`);
                  }),
                ),
              );
              const output = `result(${query})`;
              return {
                _tag: "Observation" as const,
                observation: output,
                operatorCalls: [
                  query === "bad"
                    ? { operator: "search", input: query, output: "", latencyMs: ms, error: "no such page" }
                    : { operator: "search", input: query, output, latencyMs: ms },
                ],
              };
            }),
          finish: (reason) =>
            Effect.sync(() => {
              stats.finishes.push(`${task.id}:${reason}`);
              return { reward: 0, rewardParts: { format: 0 }, finishReason: reason };
            }),
        };
        return episode;
      }),
  };
  return { layer: Layer.succeed(Environment, shape), stats };
};

export const tasks = (n: number, question = (i: number) => `q${i}`): Task[] =>
  Array.from({ length: n }, (_, i) => ({ id: `t${i}`, question: question(i), goldenAnswers: [`a${i}`] }));
