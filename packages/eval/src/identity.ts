/**
 * What an evaluation's answers depend on beyond the method and its settings: the policy model's
 * file, and which trained run (if any) must not be evaluated on its own training questions.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { open, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { DEFAULT_HELD_OUT_FRACTION, DEFAULT_TRAIN_DATASETS } from "@workflow-r1/env-qa";

const MIB = 1 << 20;

/**
 * A fast fingerprint of a model file: SHA-256 over its size, its first MiB and its last MiB
 * (GGUF headers, tensor layout and the last tensor's data), so two different GGUFs at one path —
 * a retrained policy — never share results. A path that is not a local file (an `hf:` URI) is its
 * own fingerprint.
 */
export const modelFingerprint = async (model: string): Promise<string> => {
  let size: number;
  try {
    size = (await stat(model)).size;
  } catch {
    return `uri:${model}`;
  }
  const handle = await open(model, "r");
  try {
    const hash = createHash("sha256").update(`size:${size}`);
    const read = async (position: number, length: number) => {
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buffer, 0, length, position);
      hash.update(buffer.subarray(0, bytesRead));
    };
    await read(0, Math.min(MIB, size));
    if (size > MIB) await read(Math.max(MIB, size - MIB), Math.min(MIB, size - MIB));
    return `sha256:${hash.digest("hex").slice(0, 32)}`;
  } finally {
    await handle.close();
  }
};

/** The datasets a workflow-r1 training run trained on, and the share of each it held out. */
export interface TrainingSet {
  readonly run: string;
  readonly datasets: ReadonlyArray<string>;
  readonly heldOutFraction: number;
}

/**
 * The training set of the run that produced `model`: the `config.json` beside it (a run
 * directory's `policy.gguf`), or in `runDir` when given. Undefined when there is none, or when the
 * run did not train on QA benchmark files (e.g. the synthetic environment).
 */
export const trainingSetOf = (model: string | undefined, runDir?: string): TrainingSet | undefined => {
  const dir = runDir ?? (model === undefined ? undefined : dirname(model));
  if (dir === undefined) return undefined;
  const file = join(dir, "config.json");
  if (!existsSync(file)) return undefined;
  let config: { environment?: { name?: unknown; options?: Record<string, unknown> } };
  try {
    config = JSON.parse(readFileSync(file, "utf8"));
  } catch {
    return undefined;
  }
  if (config.environment?.name !== "workflow-r1") return undefined;
  const options = config.environment.options ?? {};
  const datasets = Array.isArray(options["trainDatasets"])
    ? (options["trainDatasets"] as unknown[]).filter((d): d is string => typeof d === "string")
    : DEFAULT_TRAIN_DATASETS;
  const fraction =
    typeof options["heldOutFraction"] === "number" ? options["heldOutFraction"] : DEFAULT_HELD_OUT_FRACTION;
  // A full file name (`hotpotqa/dev`) trains on its dataset.
  return { run: dir, datasets: datasets.map((d) => d.split("/")[0]!), heldOutFraction: fraction };
};

/**
 * The policy's context size in the training run that produced `model` (`model.contextSize` of the
 * `config.json` beside it, or in `runDir`): eval runs a trained policy as it was trained unless
 * `--context-size` says otherwise. Undefined when there is no such run.
 */
export const trainedContextSize = (model: string | undefined, runDir?: string): number | undefined => {
  const dir = runDir ?? (model === undefined ? undefined : dirname(model));
  if (dir === undefined) return undefined;
  const file = join(dir, "config.json");
  if (!existsSync(file)) return undefined;
  try {
    const size = (JSON.parse(readFileSync(file, "utf8")) as { model?: { contextSize?: unknown } }).model
      ?.contextSize;
    return typeof size === "number" && Number.isInteger(size) && size > 0 ? size : undefined;
  } catch {
    return undefined;
  }
};
