/**
 * Continuous batching on node-llama-cpp's lowest-level context API (`initBatch` / `addToBatch` /
 * `decodeBatch` / `sampleToken` of the native context, internal but stable within the pinned
 * 3.22.1). Every sequence that waits for a decode joins the next batch; after one `llama_decode`,
 * each sequence reads its logits (samples or scores) before the next batch overwrites them.
 *
 * Why not `LlamaContextSequence.controlledEvaluate`: it allocates a sampler and takes several locks
 * per call, and its dispatch splits sequences across batches, which measured at 0.5–0.8× of this
 * path on a tiny model (see BENCHMARKS.md).
 */

/** The part of node-llama-cpp's native context (`LlamaContext._ctx`) this engine uses. */
export interface NativeContext {
  initBatch(size: number): void;
  addToBatch(
    sequenceId: number,
    firstTokenSequenceIndex: number,
    tokens: Uint32Array,
    logitIndexes: Uint32Array,
  ): Uint32Array;
  decodeBatch(): Promise<void>;
  sampleToken(
    batchLogitIndex: number,
    sampler: NativeSampler,
    probabilities: boolean,
    confidence?: boolean,
    logits?:
      | boolean
      | [
          tokens: readonly number[],
          includeMax: boolean,
          includeMin: boolean,
          includeSelected: boolean,
          includeTop: number,
        ],
    totalLogitWeight?: boolean,
  ): Promise<
    [
      token: number,
      probabilities: number[] | undefined,
      confidence: number | undefined,
      logits: number[] | undefined,
      total: number | undefined,
    ]
  >;
  disposeSequence(sequenceId: number): void;
}

export interface NativeSampler {
  applyConfig(config: unknown): void;
  dispose(): void;
}

interface Job<A> {
  readonly sequenceId: number;
  /** Position of `tokens[done]` in the sequence. */
  position: number;
  readonly tokens: Uint32Array;
  done: number;
  /** Positions (indexes into `tokens`) whose logits are read by `read`. */
  readonly logitIndexes: ReadonlyArray<number>;
  readonly read: (batchLogitIndex: number, tokenIndex: number) => Promise<A>;
  readonly results: A[];
  readonly resolve: (a: A[]) => void;
  readonly reject: (e: unknown) => void;
}

export class BatchEngine {
  private queue: Job<unknown>[] = [];
  private running = false;
  private scheduled = false;
  constructor(
    private readonly ctx: NativeContext,
    private readonly batchSize: number,
    /** Number of `llama_decode` calls and tokens decoded, for tests and benchmarks. */
    readonly stats: { decodes: number; decodedTokens: number } = { decodes: 0, decodedTokens: 0 },
  ) {}

  /**
   * Decode `tokens` at `position` in sequence `sequenceId`; for each index in `logitIndexes`, call
   * `read` with the batch logit index of that token right after the batch that decoded it.
   */
  decode<A>(
    sequenceId: number,
    position: number,
    tokens: ArrayLike<number>,
    logitIndexes: ReadonlyArray<number>,
    read: (batchLogitIndex: number, tokenIndex: number) => Promise<A>,
  ): Promise<A[]> {
    return new Promise<A[]>((resolve, reject) => {
      const job: Job<A> = {
        sequenceId,
        position,
        tokens: Uint32Array.from(tokens),
        done: 0,
        logitIndexes,
        read,
        results: [],
        resolve,
        reject,
      };
      this.queue.push(job as unknown as Job<unknown>);
      this.schedule();
    });
  }

  /** Sequences currently generating: when all of them wait, the batch is complete and goes at once. */
  private active = 0;

  /** A sequence starts a generate loop (it will queue decodes until {@link leave}). */
  enter(): void {
    this.active++;
  }

  leave(): void {
    this.active--;
    this.schedule();
  }

  private schedule() {
    if (this.running || this.scheduled || this.queue.length === 0) return;
    this.scheduled = true;
    if (this.queue.length >= this.active) {
      // Every generating sequence is waiting: decode now (saves an event-loop turn per token).
      queueMicrotask(() => {
        this.scheduled = false;
        void this.runBatch();
      });
      return;
    }
    // Otherwise one macrotask of slack lets every sequence whose token just resolved queue its next one.
    setImmediate(() => {
      this.scheduled = false;
      void this.runBatch();
    });
  }

  private async runBatch() {
    if (this.running || this.queue.length === 0) return;
    this.running = true;
    // Ascending sequence ids: the same 16-sequence step measured ~1.8× the CPU when the sequences were
    // added in descending id order (cause inside llama.cpp not verified; order does not change results).
    const jobs = this.queue.sort((a, b) => a.sequenceId - b.sequenceId);
    this.queue = [];
    const carry: Job<unknown>[] = [];
    try {
      let room = this.batchSize;
      const inBatch: Array<{
        job: Job<unknown>;
        from: number;
        count: number;
        batchIndexes: Uint32Array;
        logitTokens: number[];
      }> = [];
      for (const job of jobs) {
        if (room === 0) {
          carry.push(job);
          continue;
        }
        const count = Math.min(room, job.tokens.length - job.done);
        room -= count;
        const logitTokens = job.logitIndexes.filter((i) => i >= job.done && i < job.done + count);
        inBatch.push({ job, from: job.done, count, batchIndexes: new Uint32Array(0), logitTokens });
      }
      this.ctx.initBatch(this.batchSize - room);
      for (const entry of inBatch) {
        const { job, from, count } = entry;
        entry.batchIndexes = this.ctx.addToBatch(
          job.sequenceId,
          job.position + from,
          job.tokens.subarray(from, from + count),
          Uint32Array.from(entry.logitTokens, (i) => i - from),
        );
      }
      try {
        await this.ctx.decodeBatch();
      } catch (e) {
        for (const { job } of inBatch) job.reject(e);
        return;
      }
      this.stats.decodes++;
      this.stats.decodedTokens += this.batchSize - room;
      // Read every job's logits, then settle the jobs together (so their next decodes queue while no
      // native sampling is in flight).
      const settled = await Promise.all(
        inBatch.map(async (entry) => {
          const { job, logitTokens } = entry;
          try {
            // One job's reads share its sampler, which must not be used by two native calls at once.
            for (const [k, t] of logitTokens.entries())
              job.results.push(await job.read(entry.batchIndexes[k], t));
            return undefined;
          } catch (e) {
            return { error: e };
          }
        }),
      );
      inBatch.forEach((entry, i) => {
        const { job, from, count } = entry;
        const failure = settled[i];
        if (failure !== undefined) {
          job.reject(failure.error);
          return;
        }
        job.done = from + count;
        if (job.done < job.tokens.length) carry.push(job);
        else job.resolve(job.results);
      });
    } finally {
      this.queue = [...carry, ...this.queue];
      this.running = false;
      this.schedule();
    }
  }
}
