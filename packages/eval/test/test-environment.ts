/**
 * A small core `Environment` for tests of the workflow method: one operator, `Ask`, whose result
 * comes from the `Executor` in context (a real HTTP executor in integration tests). Any turn
 * without an answer calls `Ask` with the turn's text; `<answer>…</answer>` ends the episode.
 */
import {
  type Completion,
  Environment,
  EnvironmentError,
  Executor,
  ExecutorHttpError,
  type ExecutorShape,
} from "@workflow-r1/core";
import { Effect, Layer } from "effect";

const answerTag = /<answer>([\s\S]*?)<\/answer>/;

export const askEnvironment: Layer.Layer<Environment, never, Executor> = Layer.effect(
  Environment,
  Effect.gen(function* () {
    const executor = yield* Executor;
    return {
      name: "ask",
      stopSequences: ["</tool>", "</answer>"],
      reset: (task) =>
        Effect.succeed({
          messages: [
            { role: "system" as const, content: "Use <tool>Ask: question</tool>, then <answer>…</answer>." },
            { role: "user" as const, content: task.question },
          ],
          step: (action: string) =>
            answerTag.test(action)
              ? Effect.succeed({
                  _tag: "Done" as const,
                  operatorCalls: [],
                  reward: 1,
                  rewardParts: { format: 1 },
                  finishReason: "answer" as const,
                })
              : executor.complete({ messages: [{ role: "user", content: action }] }).pipe(
                  Effect.map((completion) => ({
                    _tag: "Observation" as const,
                    observation: `<info>${completion.text}</info>`,
                    operatorCalls: [
                      { operator: "Ask", input: action, output: completion.text, latencyMs: 0 },
                    ],
                  })),
                  Effect.mapError((e) => new EnvironmentError({ message: e.message, cause: e })),
                ),
          finish: (reason) => Effect.succeed({ reward: 0, rewardParts: { format: 0 }, finishReason: reason }),
        }),
    };
  }),
);

/** A minimal OpenAI-compatible executor over fetch (test double until env-qa exports HttpExecutor). */
export const fetchExecutor = (baseUrl: string): Layer.Layer<Executor> =>
  Layer.succeed(Executor, {
    complete: (request) =>
      Effect.tryPromise({
        try: async (): Promise<Completion> => {
          const response = await fetch(`${baseUrl}/chat/completions`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ model: "test", messages: request.messages }),
          });
          if (!response.ok) throw new Error(`HTTP ${response.status}`);
          const json = (await response.json()) as { choices: Array<{ message: { content: string } }> };
          return { text: json.choices[0]!.message.content, finishReason: "stop" };
        },
        catch: (cause) => new ExecutorHttpError({ message: String(cause), url: baseUrl, attempts: 1 }),
      }),
  } satisfies ExecutorShape);
