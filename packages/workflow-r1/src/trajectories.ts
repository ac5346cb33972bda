/** `workflow-r1 trajectories FILE`: a readable view of chosen episodes of a trajectory log. */
import { formatTrajectory, readTrajectoryLogAll } from "@workflow-r1/rollout";

export const printTrajectories = async (file: string, options: { episodes?: string; model?: string }) => {
  const { trajectories, ignoredBytes, corruptRegions, corruptBytes } = await readTrajectoryLogAll(file);
  if (corruptRegions.length > 0) {
    // The log stays readable: say what was lost, then show the intact episodes.
    const where = corruptRegions
      .slice(0, 5)
      .map((r) => `${r.bytes} bytes at byte ${r.offset}`)
      .join(", ");
    process.stderr.write(
      `warning: ${file}: skipped ${corruptRegions.length} corrupt region(s), ${corruptBytes} bytes (${where}${corruptRegions.length > 5 ? ", …" : ""}); ${trajectories.length} intact records read\n`,
    );
  }
  const wanted = options.episodes
    ? options.episodes.split(",").map((s) => Number(s.trim()))
    : trajectories.slice(0, 3).map((_, i) => i);
  let decode: ((tokens: ArrayLike<number>) => string) | undefined;
  let dispose = async () => {};
  if (options.model) {
    const { createLlamaCppPolicy } = await import("@workflow-r1/policy");
    const policy = await createLlamaCppPolicy({ modelPath: options.model, gpu: false, sequences: 1 });
    decode = policy.detokenize;
    dispose = policy.dispose;
  }
  process.stdout.write(
    `${file}: ${trajectories.length} episodes${ignoredBytes > 0 ? ` (${ignoredBytes} bytes of torn tail ignored)` : ""}\n`,
  );
  for (const index of wanted) {
    const t = trajectories[index];
    if (!t) {
      process.stdout.write(`\n# episode ${index}: not in the log (0…${trajectories.length - 1})\n`);
      continue;
    }
    process.stdout.write(`\n# episode ${index}\n${formatTrajectory(t, decode ? { decode } : {})}\n`);
  }
  await dispose();
};
