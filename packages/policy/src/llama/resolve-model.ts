/**
 * One local file for a model reference: a path stays a path; an `hf:<user>/<repo>:<quant>` URI is
 * downloaded once into node-llama-cpp's model cache (needs network) and its local path returned.
 * The trainer resolves the URI here once, so the policy and the learner open the same file.
 */
import { ModelLoadError } from "@workflow-r1/core";
import { Effect } from "effect";
import { resolveModelFile } from "node-llama-cpp";

export const isRemoteModelUri = (reference: string): boolean => reference.startsWith("hf:");

export const resolveModelPath = (reference: string): Effect.Effect<string, ModelLoadError> =>
  isRemoteModelUri(reference)
    ? Effect.tryPromise({
        try: () => resolveModelFile(reference),
        catch: (cause) =>
          new ModelLoadError({
            path: reference,
            message:
              `cannot resolve ${reference} to a local GGUF (hf: URIs are downloaded once into ` +
              `node-llama-cpp's model cache and need network access): ${cause instanceof Error ? cause.message : String(cause)}`,
            cause,
          }),
      })
    : Effect.succeed(reference);
