/**
 * Checkpoints: `<out>/checkpoints/step-NNNNNN/` holds the learner state (weights + optimizer
 * moments), the exported policy weights and `state.json` (step, data position, RNG, trajectory-log
 * position). During the warm start, `warm-NNNNNN/` holds the learner state and `state.json` only. The
 * directory is filled under a temporary name and renamed when complete; `<out>/checkpoints/latest`
 * is then replaced atomically. A run killed at any point resumes from the last complete one.
 */
import * as path from "node:path";
import { ConfigError } from "@workflow-r1/core";
import { Effect, FileSystem } from "effect";
import { fsyncDirectory, writeFileAtomic } from "./atomic.js";

export interface LoopState {
  /** Last completed step. */
  readonly step: number;
  /** Index of the next task in the shuffled task order. */
  readonly dataPosition: number;
  /** Epoch of the task order (reshuffled per epoch). */
  readonly epoch: number;
  readonly rngState: number;
  /** Path of the policy weights (GGUF or LoRA GGUF) exported at this step, relative to the checkpoint. */
  readonly policyWeights: string;
  readonly weightsKind: "gguf" | "lora";
  /** "warm-start" while the supervised warm start runs; absent in checkpoints older than it (= "rl"). */
  readonly phase?: "warm-start" | "rl";
  /** Warm-start steps done. */
  readonly warmStartStep?: number;
  /** Records in the trajectory log at this checkpoint; a resume cuts the log back to them. */
  readonly trajectoryRecords?: number;
}

export const checkpointPhase = (state: LoopState): "warm-start" | "rl" => state.phase ?? "rl";

const name = (state: LoopState) =>
  checkpointPhase(state) === "warm-start"
    ? `warm-${String(state.warmStartStep ?? 0).padStart(6, "0")}`
    : `step-${String(state.step).padStart(6, "0")}`;

/** Chronological order of checkpoint directory names: every warm-start one before every RL one. */
const chronological = (a: string, b: string) =>
  (a.startsWith("warm-") ? `0${a}` : `1${a}`).localeCompare(b.startsWith("warm-") ? `0${b}` : `1${b}`);

export class Checkpoints {
  readonly root: string;

  constructor(out: string) {
    this.root = path.join(out, "checkpoints");
  }

  /**
   * Write a checkpoint: `fill(dir)` writes the large files into a fresh temporary directory; then
   * `state.json` goes in, the directory is renamed to its final name and `latest` points at it.
   */
  save<E, R>(state: LoopState, fill: (dir: string) => Effect.Effect<void, E, R>) {
    const final = path.join(this.root, name(state));
    const temp = path.join(this.root, `.${name(state)}.partial-${process.pid}`);
    const root = this.root;
    return Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem;
      yield* fs.makeDirectory(root, { recursive: true });
      yield* fs.remove(temp, { recursive: true, force: true });
      yield* fs.makeDirectory(temp);
      // A failed `fill` (e.g. the learner could not write its state) keeps its typed error, and the
      // half-written directory goes (`prune` would also remove it on the next start).
      yield* fill(temp).pipe(Effect.tapError(() => fs.remove(temp, { recursive: true, force: true })));
      yield* writeFileAtomic(path.join(temp, "state.json"), JSON.stringify(state, null, 2));
      yield* fsyncDirectory(temp);
      yield* fs.remove(final, { recursive: true, force: true });
      yield* fs.rename(temp, final);
      yield* fsyncDirectory(root);
      yield* writeFileAtomic(path.join(root, "latest"), name(state));
      return final;
    });
  }

  /** The last complete checkpoint, or undefined when there is none. */
  latest() {
    const pointer = path.join(this.root, "latest");
    const root = this.root;
    return Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem;
      if (!(yield* fs.exists(pointer))) return undefined;
      const dir = path.join(root, (yield* fs.readFileString(pointer)).trim());
      const stateFile = path.join(dir, "state.json");
      if (!(yield* fs.exists(stateFile)))
        return yield* new ConfigError({
          message: `checkpoint ${dir} named by ${pointer} has no state.json; the run directory is damaged`,
        });
      const text = yield* fs.readFileString(stateFile);
      const state = yield* Effect.try({
        try: () => JSON.parse(text) as LoopState,
        catch: (error) =>
          new ConfigError({
            message: `checkpoint state ${stateFile} is not valid JSON (${(error as Error).message}); the run directory is damaged`,
          }),
      });
      return { dir, state };
    });
  }

  /** Remove leftovers of checkpoints that were being written when a run was killed, and keep the newest `keep`. */
  prune(keep: number) {
    const root = this.root;
    const latest = this.latest();
    return Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem;
      if (!(yield* fs.exists(root))) return;
      const entries = yield* fs.readDirectory(root);
      for (const entry of entries)
        if (entry.includes(".partial-"))
          yield* fs.remove(path.join(root, entry), { recursive: true, force: true });
      const complete = entries.filter((e) => /^(step|warm)-\d+$/.test(e)).sort(chronological);
      const current = yield* latest;
      for (const entry of complete.slice(0, Math.max(0, complete.length - keep)))
        if (!current || path.join(root, entry) !== current.dir)
          yield* fs.remove(path.join(root, entry), { recursive: true, force: true });
    });
  }
}
