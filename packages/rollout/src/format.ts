import type { Trajectory } from "@workflow-r1/core";

export interface FormatTrajectoryOptions {
  /** Turns token ids back into text (e.g. `policy.detokenize`), to show the prompt. */
  readonly decode?: (tokens: ArrayLike<number>) => string;
  /** Longest text shown per action, observation or operator field before it is cut. Default 2000. */
  readonly maxChars?: number;
}

const cut = (text: string, max: number): string =>
  text.length <= max ? text : `${text.slice(0, max)}… [${text.length - max} more chars]`;

const indent = (text: string, prefix = "    "): string =>
  text
    .split("\n")
    .map((line) => prefix + line)
    .join("\n");

/**
 * A readable view of one trajectory: header (task, group, finish reason, reward and its parts,
 * token counts), the prompt when a decoder is given, then each turn with its action, operator
 * calls (latency, errors) and observation.
 */
export const formatTrajectory = (trajectory: Trajectory, options: FormatTrajectoryOptions = {}): string => {
  const max = options.maxChars ?? 2000;
  let sampled = 0;
  for (let i = 0; i < trajectory.mask.length; i++) sampled += trajectory.mask[i]!;
  const parts = Object.entries(trajectory.rewardParts)
    .map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(3)}`)
    .join(" ");
  const lines: string[] = [
    `task ${trajectory.taskId}  group ${trajectory.groupId}  finish ${trajectory.finishReason}`,
    `reward ${trajectory.reward}${parts === "" ? "" : `  (${parts})`}`,
    `tokens ${trajectory.tokens.length} (prompt ${trajectory.promptLength}, sampled ${sampled})  turns ${trajectory.turns.length}`,
  ];
  if (trajectory.error !== undefined) lines.push(`error: ${trajectory.error}`);
  if (options.decode !== undefined)
    lines.push(
      "prompt:",
      indent(cut(options.decode(trajectory.tokens.subarray(0, trajectory.promptLength)), max)),
    );
  trajectory.turns.forEach((turn, i) => {
    lines.push(
      `turn ${i + 1}: ${turn.sampledTokens} tokens, sample ${turn.sampleMs.toFixed(1)} ms, env ${turn.envMs.toFixed(1)} ms`,
      "  action:",
      indent(cut(turn.action, max)),
    );
    for (const call of turn.operatorCalls) {
      lines.push(
        `  ${call.operator}(${JSON.stringify(cut(call.input, max))}) ${call.latencyMs.toFixed(1)} ms`,
      );
      if (call.error !== undefined) lines.push(`    error: ${cut(call.error, max)}`);
      else lines.push(indent(cut(call.output, max), "    = "));
    }
    if (turn.observation !== undefined) lines.push("  observation:", indent(cut(turn.observation, max)));
  });
  return lines.join("\n");
};
