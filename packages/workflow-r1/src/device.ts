/**
 * One meaning of `model.gpu` for the sampler and the learner:
 * - `false`: both on the CPU;
 * - `"cuda"`: both on CUDA; refused up front when the learner's CUDA build or ggml's CUDA library is
 *   missing, with the command that builds them;
 * - `"auto"`: CUDA for both when that build is present, the CPU for both otherwise;
 * - `"vulkan"`: refused (the learner has no Vulkan backend).
 */
import * as path from "node:path";
import { ConfigError } from "@workflow-r1/core";
import { backendsDirectory } from "@workflow-r1/learner";
import { Effect, FileSystem } from "effect";

export interface Devices {
  /** node-llama-cpp's `gpu` setting for the policy. */
  readonly policy: false | "cuda";
  /** The learner's `gpu` flag. */
  readonly learner: boolean;
}

const BUILD_HINT =
  "build ggml's CUDA backend and the learner against it with `bash packages/learner/scripts/build-cuda.sh` " +
  "(needs the CUDA toolkit), then run with WORKFLOW_R1_CUDA=1";

/** Why CUDA is not usable here, or undefined when the CUDA build is in place. */
export const cudaProblem = (env: NodeJS.ProcessEnv = process.env) =>
  Effect.gen(function* () {
    if (env["WORKFLOW_R1_CUDA"] !== "1")
      return "WORKFLOW_R1_CUDA is not 1, so the learner runs its CPU build";
    let dir: string;
    try {
      dir = backendsDirectory();
    } catch (e) {
      return (e as Error).message;
    }
    const lib = path.join(dir, "libggml-cuda.so");
    const fs = yield* FileSystem.FileSystem;
    if (!(yield* fs.exists(lib).pipe(Effect.orElseSucceed(() => false)))) return `${lib} is missing`;
    return undefined;
  });

/** The devices `model.gpu` selects; `"cuda"` where CUDA is not usable is a ConfigError saying why. */
export const resolveDevices = (
  gpu: false | "auto" | "cuda" | "vulkan",
  env: NodeJS.ProcessEnv = process.env,
) =>
  Effect.gen(function* () {
    if (gpu === false) return { policy: false, learner: false } as Devices;
    if (gpu === "vulkan")
      return yield* new ConfigError({
        field: "model.gpu",
        message: 'the learner has no Vulkan backend: use model.gpu "cuda" (NVIDIA) or false (CPU)',
      });
    const problem = yield* cudaProblem(env);
    if (gpu === "auto")
      return (
        problem === undefined ? { policy: "cuda", learner: true } : { policy: false, learner: false }
      ) as Devices;
    if (problem !== undefined)
      return yield* new ConfigError({
        field: "model.gpu",
        message: `model.gpu is "cuda" but CUDA is not usable: ${problem}; ${BUILD_HINT}`,
      });
    return { policy: "cuda", learner: true } as Devices;
  });
