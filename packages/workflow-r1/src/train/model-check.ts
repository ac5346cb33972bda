/**
 * Checks a starting GGUF before anything loads it: the file exists, its header is a GGUF, and the
 * learner can train its architecture. A model the learner cannot train (Gemma 3 today) then fails
 * at once with the supported ones named, instead of after the policy has loaded.
 */
import * as fs from "node:fs";
import { ConfigError, ModelLoadError } from "@workflow-r1/core";
import { readGguf } from "@workflow-r1/gguf";
import { TRAINABLE_ARCHITECTURES } from "@workflow-r1/learner";
import { Effect } from "effect";

export const checkTrainableModel = (modelPath: string) =>
  Effect.gen(function* () {
    if (!fs.existsSync(modelPath))
      return yield* new ModelLoadError({ path: modelPath, message: `model file not found: ${modelPath}` });
    const header = yield* Effect.tryPromise({
      try: () => readGguf(modelPath, { tensorData: false }),
      catch: (cause) =>
        new ModelLoadError({
          path: modelPath,
          message: `cannot read ${modelPath} as a GGUF model: ${cause instanceof Error ? cause.message : String(cause)}`,
          cause,
        }),
    });
    const entry = header.metadata["general.architecture"];
    const architecture = typeof entry?.value === "string" ? entry.value : undefined;
    if (architecture === undefined || !TRAINABLE_ARCHITECTURES.includes(architecture))
      return yield* new ConfigError({
        field: "model.path",
        message:
          `${modelPath} is a ${architecture ?? "model without general.architecture"}; the learner trains ` +
          `${TRAINABLE_ARCHITECTURES.join(", ")} models. Choose a policy of one of those architectures ` +
          "(a model of another one can still run the operators: environment.options.executor).",
      });
    return architecture;
  });
