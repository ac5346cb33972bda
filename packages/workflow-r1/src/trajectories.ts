/** `workflow-r1 trajectories FILE`: a readable view of chosen episodes of a trajectory log. */
import { LlamaCppPolicy } from "@workflow-r1/policy";
import { formatTrajectory, readTrajectoryLogAll, TrajectoryLogError } from "@workflow-r1/rollout";
import { Effect } from "effect";

export const printTrajectories = (file: string, options: { episodes?: string; model?: string }) =>
  Effect.gen(function* () {
    const { trajectories, ignoredBytes, corruptRegions, corruptBytes } = yield* Effect.tryPromise({
      try: () => readTrajectoryLogAll(file),
      catch: (cause) =>
        cause instanceof TrajectoryLogError
          ? cause
          : new TrajectoryLogError({
              file,
              message: `cannot read ${file}: ${(cause as Error).message}`,
              cause,
            }),
    });
    const write = (stream: NodeJS.WriteStream, text: string) => Effect.sync(() => stream.write(text));
    if (corruptRegions.length > 0) {
      // The log stays readable: say what was lost, then show the intact episodes.
      const where = corruptRegions
        .slice(0, 5)
        .map((r) => `${r.bytes} bytes at byte ${r.offset}`)
        .join(", ");
      yield* write(
        process.stderr,
        `warning: ${file}: skipped ${corruptRegions.length} corrupt region(s), ${corruptBytes} bytes (${where}${corruptRegions.length > 5 ? ", …" : ""}); ${trajectories.length} intact records read\n`,
      );
    }
    const wanted = options.episodes
      ? options.episodes.split(",").map((s) => Number(s.trim()))
      : trajectories.slice(0, 3).map((_, i) => i);
    // The tokenizer of a GGUF decodes the tokens; the policy holding it is freed with the scope.
    const decode = options.model
      ? (yield* LlamaCppPolicy.make({ modelPath: options.model, gpu: false, sequences: 1 })).detokenize
      : undefined;
    yield* write(
      process.stdout,
      `${file}: ${trajectories.length} episodes${ignoredBytes > 0 ? ` (${ignoredBytes} bytes of torn tail ignored)` : ""}\n`,
    );
    for (const index of wanted) {
      const t = trajectories[index];
      yield* write(
        process.stdout,
        t
          ? `\n# episode ${index}\n${formatTrajectory(t, decode ? { decode } : {})}\n`
          : `\n# episode ${index}: not in the log (0…${trajectories.length - 1})\n`,
      );
    }
  }).pipe(Effect.scoped);
