/**
 * The unit of data that flows from rollout to training: one whole episode, token in, token out.
 */

/** One call of an operator (tool) made by the environment on the agent's behalf. */
export interface OperatorCall {
  readonly operator: string;
  readonly input: string;
  readonly output: string;
  readonly latencyMs: number;
  /** Set when the call failed; the agent then saw an error observation. */
  readonly error?: string;
}

/** One assistant turn and what the environment answered. */
export interface Turn {
  /** The assistant's text for this turn, decoded from the sampled tokens. */
  readonly action: string;
  /** The observation shown to the agent after this turn (absent on the last turn). */
  readonly observation?: string;
  readonly operatorCalls: ReadonlyArray<OperatorCall>;
  /** Number of tokens the policy sampled in this turn. */
  readonly sampledTokens: number;
  /** Wall time spent sampling this turn (queueing included), in milliseconds. */
  readonly sampleMs: number;
  /** Wall time the environment took to answer this turn, in milliseconds. */
  readonly envMs: number;
}

/** Why an episode ended. */
export type FinishReason =
  | "answer" // the agent gave a final answer
  | "done" // the environment ended the episode for another reason of its own
  | "operator-budget" // the operator-call budget was spent
  | "max-turns"
  | "max-tokens"
  | "context-overflow"
  | "error" // a policy or environment failure: excluded from training
  | "cancelled";

export interface Trajectory {
  /** The whole episode: prompt, sampled actions and observations. */
  readonly tokens: Int32Array;
  /** Number of prompt tokens at the start of `tokens`. */
  readonly promptLength: number;
  /** 1 where the policy sampled the token, 0 for prompt and observation tokens. */
  readonly mask: Uint8Array;
  /** Segment (Think-Action cycle) index per token: 0, 1, … for each maximal run of mask 1; -1 where mask is 0. */
  readonly segments: Int32Array;
  /** Log-probability the sampler gave each sampled token (temperature 1, no truncation); NaN where mask is 0. */
  readonly samplerLogprobs: Float32Array;
  readonly reward: number;
  /** Named reward components (format, answer, em, f1, …). */
  readonly rewardParts: Readonly<Record<string, number>>;
  /** Trajectories of the same group are the G samples of one task. */
  readonly groupId: string;
  readonly taskId: string;
  readonly turns: ReadonlyArray<Turn>;
  readonly finishReason: FinishReason;
  /** Set when the episode failed; such trajectories are excluded from training. */
  readonly error?: string;
}
