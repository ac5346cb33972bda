import { type Trajectory, TrajectoryBuilder } from "../src/index.js";

/** A small valid trajectory: prompt, two sampled turns with an observation between them. */
export const sampleTrajectory = (): Trajectory => {
  const builder = new TrajectoryBuilder([1, 2, 3]);
  builder.appendSampled([10, 11], [-0.5, -1.25]);
  builder.appendObservation([20, 21, 22]);
  builder.appendSampled([12, 13, 14], [-0.1, -2, -0.75]);
  return builder.build({
    reward: 1,
    rewardParts: { format: 0, answer: 1 },
    groupId: "g0",
    taskId: "task-7",
    turns: [
      {
        action: "<think>a</think><tool>Search: x</tool>",
        observation: "<info>y</info>",
        operatorCalls: [{ operator: "Search", input: "x", output: "y", latencyMs: 3 }],
        sampledTokens: 2,
        sampleMs: 1,
        envMs: 3,
      },
      {
        action: "<think>b</think><answer>z</answer>",
        operatorCalls: [],
        sampledTokens: 3,
        sampleMs: 1,
        envMs: 0,
      },
    ],
    finishReason: "answer",
  });
};
