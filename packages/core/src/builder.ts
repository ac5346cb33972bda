import { segmentsFromMask } from "./segments.js";
import type { FinishReason, Trajectory, Turn } from "./trajectory.js";

/**
 * Builds the per-token arrays of a trajectory in lockstep, append-only: tokens, mask and sampler
 * logprobs always grow together, so they cannot drift apart. Segments are derived from the mask
 * when the trajectory is built.
 */
export class TrajectoryBuilder {
  private tokens: Int32Array;
  private mask: Uint8Array;
  private logprobs: Float32Array;
  private length = 0;
  private sampled = 0;
  readonly promptLength: number;

  constructor(prompt: ArrayLike<number>) {
    const capacity = Math.max(64, prompt.length * 2);
    this.tokens = new Int32Array(capacity);
    this.mask = new Uint8Array(capacity);
    this.logprobs = new Float32Array(capacity);
    this.promptLength = prompt.length;
    this.push(prompt, 0, undefined);
  }

  /** Tokens the environment inserted (an observation and the chat wrapper around it): mask 0. */
  appendObservation(tokens: ArrayLike<number>): void {
    this.push(tokens, 0, undefined);
  }

  /** Tokens the policy sampled, exactly as sampled, with the sampler's log-probability of each. */
  appendSampled(tokens: ArrayLike<number>, logprobs: ArrayLike<number>): void {
    if (logprobs.length !== tokens.length)
      throw new RangeError(`appendSampled: ${tokens.length} tokens but ${logprobs.length} logprobs`);
    this.push(tokens, 1, logprobs);
    this.sampled += tokens.length;
  }

  /** Number of tokens held so far. */
  get size(): number {
    return this.length;
  }

  /** Number of sampled (mask 1) tokens so far. */
  get sampledTokens(): number {
    return this.sampled;
  }

  /** A copy of the tokens held so far. */
  currentTokens(): Int32Array {
    return this.tokens.slice(0, this.length);
  }

  build(meta: {
    readonly reward: number;
    readonly rewardParts: Readonly<Record<string, number>>;
    readonly groupId: string;
    readonly taskId: string;
    readonly turns: ReadonlyArray<Turn>;
    readonly finishReason: FinishReason;
    readonly error?: string;
  }): Trajectory {
    const mask = this.mask.slice(0, this.length);
    return {
      tokens: this.tokens.slice(0, this.length),
      promptLength: this.promptLength,
      mask,
      segments: segmentsFromMask(mask),
      samplerLogprobs: this.logprobs.slice(0, this.length),
      ...meta,
    };
  }

  private push(tokens: ArrayLike<number>, maskValue: 0 | 1, logprobs: ArrayLike<number> | undefined): void {
    this.reserve(this.length + tokens.length);
    for (let i = 0; i < tokens.length; i++) {
      const at = this.length + i;
      this.tokens[at] = tokens[i]!;
      this.mask[at] = maskValue;
      this.logprobs[at] = logprobs === undefined ? Number.NaN : logprobs[i]!;
    }
    this.length += tokens.length;
  }

  private reserve(capacity: number): void {
    if (capacity <= this.tokens.length) return;
    const size = Math.max(capacity, this.tokens.length * 2);
    const grow = <T extends Int32Array | Uint8Array | Float32Array>(a: T, make: (n: number) => T): T => {
      const b = make(size);
      b.set(a);
      return b;
    };
    this.tokens = grow(this.tokens, (n) => new Int32Array(n));
    this.mask = grow(this.mask, (n) => new Uint8Array(n));
    this.logprobs = grow(this.logprobs, (n) => new Float32Array(n));
  }
}
