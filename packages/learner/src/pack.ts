/**
 * Sequence packing for the learner: sequences are laid end to end in rows of one length (a
 * multiple of `ROW_ALIGN`, so calls of similar batches reuse one compiled graph), rows are grouped
 * into micro-batches of at most `budget` tokens. The native side keeps packed sequences apart
 * with a per-row block-causal mask and positions that restart at each sequence.
 */

/** Row lengths are rounded up to a multiple of this. */
export const ROW_ALIGN = 64;

export interface Placement {
  /** Index of the sequence in the batch. */
  readonly sequence: number;
  /** Row within the micro-batch. */
  readonly row: number;
  /** First token's column in the row. */
  readonly offset: number;
}

export interface PackedMicroBatch {
  /** Tokens per row. */
  readonly length: number;
  readonly rows: number;
  readonly placements: ReadonlyArray<Placement>;
}

/**
 * First-fit decreasing: each sequence goes into the first row with room, longest first. Every
 * micro-batch has `length × rows ≤ budget`, except that a row always fits its longest sequence.
 */
export const planPackedBatches = (
  lengths: ReadonlyArray<number>,
  budget: number,
  context: number,
): PackedMicroBatch[] => {
  if (lengths.length === 0) return [];
  const longest = Math.max(...lengths);
  const length = Math.max(longest, Math.min(context, Math.ceil(longest / ROW_ALIGN) * ROW_ALIGN));
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[b] - lengths[a] || a - b);
  const rows: { used: number; items: { sequence: number; offset: number }[] }[] = [];
  for (const sequence of order) {
    let row = rows.find((r) => r.used + lengths[sequence] <= length);
    if (row === undefined) {
      row = { used: 0, items: [] };
      rows.push(row);
    }
    row.items.push({ sequence, offset: row.used });
    row.used += lengths[sequence];
  }
  const perBatch = Math.max(1, Math.floor(budget / length));
  // Spread rows evenly, so the micro-batches of one call share a shape.
  const batches = Math.ceil(rows.length / perBatch);
  const size = Math.ceil(rows.length / batches);
  const out: PackedMicroBatch[] = [];
  for (let start = 0; start < rows.length; start += size) {
    const group = rows.slice(start, start + size);
    out.push({
      length,
      rows: group.length,
      placements: group.flatMap((r, row) => r.items.map((it) => ({ ...it, row }))),
    });
  }
  return out;
};

/** Token and segment blocks [rows × length] of one micro-batch; padding is segment −1. */
export const packTokens = (
  plan: PackedMicroBatch,
  sequences: ReadonlyArray<{ readonly tokens: ArrayLike<number> }>,
): { tokens: Int32Array; segments: Int32Array } => {
  const tokens = new Int32Array(plan.length * plan.rows);
  const segments = new Int32Array(plan.length * plan.rows).fill(-1);
  plan.placements.forEach((p, k) => {
    const start = p.row * plan.length + p.offset;
    tokens.set(sequences[p.sequence].tokens, start);
    segments.fill(k, start, start + sequences[p.sequence].tokens.length);
  });
  return { tokens, segments };
};
