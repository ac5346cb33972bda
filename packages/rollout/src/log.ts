/**
 * The trajectory log: an append-only file of msgpack trajectories (core's `packr`).
 *
 * Layout: an 8-byte header `WR1TLOG` + version byte 1, then records, each
 * `[u32 LE payload length][u32 LE CRC-32 of the payload][payload]`. Each record goes to the kernel
 * in one `write` call, so a process killed at any moment leaves a prefix of whole records plus at
 * most one torn record at the end; the reader yields every whole record and reports how many tail
 * bytes it ignored. Opening an existing log for append first truncates such a torn tail, so new
 * records never land behind garbage. Corruption inside the file (bytes overwritten on disk) costs
 * only the records it touches: readers skip the bad stretch (absurd length, CRC mismatch, or a
 * payload that is not a trajectory), resynchronise by scanning forward byte by byte for the next
 * valid record (plausible length that fits the file, a payload starting like a msgpack map and a
 * matching CRC-32, preferably followed by another valid record or the end of the file) and report
 * the stretches they skipped (`corruptRegions`, `corruptBytes`). A writer opened on such a file
 * keeps it whole and appends after its last valid record.
 *
 * Positions: a writer's `existingRecords + records` is the number of records in the log (counted
 * with the same resynchronising scan); store it with a checkpoint and reopen with
 * `{ keepRecords: n }` to cut a resumed run's log back to it (`truncatedRecords` says how many
 * records were dropped).
 *
 * fsync policy (`fsync` option): a killed process loses nothing that was written (the data is in
 * the kernel's page cache), so the default `"close"` syncs only when the writer closes. Use
 * `"record"` to survive power loss or a kernel crash after each record, at the cost of one fsync
 * per trajectory (milliseconds on most disks); `"none"` never syncs.
 */

import type { FileHandle } from "node:fs/promises";
import { open, stat } from "node:fs/promises";
import { crc32 } from "node:zlib";
import { decodeTrajectory, encodeTrajectory, type Trajectory } from "@workflow-r1/core";
import { Data, Effect, type Scope, Semaphore } from "effect";

const MAGIC = Uint8Array.from([0x57, 0x52, 0x31, 0x54, 0x4c, 0x4f, 0x47, 0x01]); // "WR1TLOG" v1
const HEADER = MAGIC.length;
const RECORD_HEAD = 8;
/** Records larger than this are taken as corruption, not as a real length. */
const MAX_RECORD = 1 << 30;

/** The trajectory log cannot be opened, written or read. */
export class TrajectoryLogError extends Data.TaggedError("TrajectoryLogError")<{
  readonly message: string;
  readonly file: string;
  /** Byte offset of the problem, when it is about one place in the file. */
  readonly offset?: number;
  readonly cause?: unknown;
}> {}

export type FsyncPolicy = "none" | "record" | "close";

export interface TrajectoryLogWriterOptions {
  /** When to fsync; default "close" (see the module comment). */
  readonly fsync?: FsyncPolicy;
  /**
   * Keep only the first `keepRecords` records of an existing log and append after them: a resumed
   * run cuts the killed attempt's episodes back to its checkpoint's position
   * (`existingRecords + records` of the writer when the checkpoint was written). Fails when the
   * log holds fewer records.
   */
  readonly keepRecords?: number;
}

const frame = (payload: Uint8Array): Uint8Array => {
  const out = new Uint8Array(RECORD_HEAD + payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, payload.length, true);
  view.setUint32(4, crc32(payload), true);
  out.set(payload, RECORD_HEAD);
  return out;
};

interface Scan {
  /** Offset just past the last whole record. */
  readonly end: number;
  readonly records: number;
  readonly size: number;
  /** Offset just past each whole record, in order. */
  readonly ends: ReadonlyArray<number>;
}

/** A stretch of a log that holds no valid record, skipped by readers. */
export interface CorruptRegion {
  /** File offset where the bad bytes start. */
  readonly offset: number;
  readonly bytes: number;
}

const hasMagic = (bytes: Uint8Array): boolean => MAGIC.every((b, i) => bytes[i] === b);

/**
 * First byte of every payload: a trajectory encodes as a msgpack map (fixmap, map16 or map32).
 * Checked before the CRC-32, it spares a resync most of the checksums over chance lengths.
 */
const isMapStart = (byte: number): boolean => (byte & 0xf0) === 0x80 || byte === 0xde || byte === 0xdf;

/** Random-access reads through a 1 MiB window (records are read in order; resync scans forward). */
class Window {
  private buffer = new Uint8Array(0);
  private start = 0;
  private readonly handle: FileHandle;
  readonly size: number;
  // Plain fields rather than parameter properties: the crash test runs this file with Node's type stripping.
  constructor(handle: FileHandle, size: number) {
    this.handle = handle;
    this.size = size;
  }

  private async fill(into: Uint8Array, offset: number): Promise<number> {
    let done = 0;
    while (done < into.length) {
      const { bytesRead } = await this.handle.read(into, done, into.length - done, offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done;
  }

  private holds(offset: number, length: number): boolean {
    return offset >= this.start && offset + length <= this.start + this.buffer.length;
  }

  /** `length` bytes at `offset` (moving the window there when needed), or undefined past the end. */
  async read(offset: number, length: number): Promise<Uint8Array | undefined> {
    if (offset + length > this.size) return undefined;
    if (!this.holds(offset, length)) {
      const next = new Uint8Array(Math.min(this.size - offset, Math.max(length, 1 << 20)));
      const done = await this.fill(next, offset);
      if (done < length) return undefined;
      this.buffer = next.subarray(0, done);
      this.start = offset;
    }
    return this.buffer.subarray(offset - this.start, offset - this.start + length);
  }

  /** A few bytes at `offset`, read on their own when outside the window (which stays where it is). */
  async peek(offset: number, length: number): Promise<Uint8Array | undefined> {
    if (offset + length > this.size) return undefined;
    if (this.holds(offset, length))
      return this.buffer.subarray(offset - this.start, offset - this.start + length);
    const out = new Uint8Array(length);
    return (await this.fill(out, offset)) < length ? undefined : out;
  }
}

/**
 * The payload length of the record whose header is at `at` if that header is plausible (non-zero
 * length, at most MAX_RECORD, fits the file, payload starting like a trajectory), else undefined.
 * No checksum yet. `peek` reads far ahead without moving the window.
 */
const plausibleLength = async (window: Window, at: number, peek = false): Promise<number | undefined> => {
  // The header and the payload's first byte (a plausible length is at least 1).
  const head = peek ? await window.peek(at, RECORD_HEAD + 1) : await window.read(at, RECORD_HEAD + 1);
  if (head === undefined) return undefined;
  const length = new DataView(head.buffer, head.byteOffset, head.byteLength).getUint32(0, true);
  // The writer never writes an empty payload: a zero length is not a record (8 zero bytes inside
  // a payload would otherwise pass, the CRC-32 of nothing being 0).
  if (length === 0 || length > MAX_RECORD || at + RECORD_HEAD + length > window.size) return undefined;
  return isMapStart(head[RECORD_HEAD]!) ? length : undefined;
};

/** Whether the record at `at`, of payload `length`, matches its CRC-32. */
const checksumOk = async (window: Window, at: number, length: number): Promise<boolean> => {
  // Header and payload in one read, so a moved window still covers the offsets a resync tries next.
  const record = await window.read(at, RECORD_HEAD + length);
  if (record === undefined) return false;
  const checksum = new DataView(record.buffer, record.byteOffset, RECORD_HEAD).getUint32(4, true);
  return crc32(record.subarray(RECORD_HEAD)) === checksum;
};

/** The payload length of a valid record at `at` (plausible header, CRC-32 matches), else undefined. */
const validLength = async (window: Window, at: number): Promise<number | undefined> => {
  const length = await plausibleLength(window, at);
  return length !== undefined && (await checksumOk(window, at, length)) ? length : undefined;
};

/** The payload of a valid record at `at` (a copy: the window's buffer is not kept alive), else undefined. */
const validRecord = async (window: Window, at: number): Promise<Uint8Array | undefined> => {
  const length = await validLength(window, at);
  if (length === undefined) return undefined;
  return (await window.read(at + RECORD_HEAD, length))?.slice();
};

/**
 * Where reading resumes after a bad record: the next offset at or after `from` holding a valid
 * record, or undefined when none does (the rest is a torn tail). Scans byte by byte for the first
 * confirmed record: valid, and followed by another valid record or by the end of the file. A valid
 * but unconfirmed record before it (the record after it is bad too) is taken instead when it ends
 * at or before the confirmed one; one that runs past it is a chance match in the garbage (a length
 * and a CRC-32 that happen to fit) that would swallow real records. With no confirmed record left,
 * the first valid one.
 */
const resync = async (window: Window, from: number): Promise<number | undefined> => {
  const unconfirmed: Array<{ readonly at: number; readonly end: number; readonly valid?: boolean }> = [];
  let confirmed: number | undefined;
  for (let at = from; at + RECORD_HEAD < window.size; at++) {
    const length = await plausibleLength(window, at);
    if (length === undefined) continue;
    const end = at + RECORD_HEAD + length;
    // Cheap look at the successor's header before any checksum.
    if (end < window.size && (await plausibleLength(window, end, true)) === undefined) {
      unconfirmed.push({ at, end });
      continue;
    }
    if (!(await checksumOk(window, at, length))) continue;
    if (end === window.size || (await validLength(window, end)) !== undefined) {
      confirmed = at;
      break;
    }
    unconfirmed.push({ at, end, valid: true });
  }
  for (const candidate of unconfirmed) {
    if (confirmed !== undefined && candidate.end > confirmed) continue;
    if (
      candidate.valid ||
      (await checksumOk(window, candidate.at, candidate.end - candidate.at - RECORD_HEAD))
    )
      return candidate.at;
  }
  return confirmed;
};

/** Notes a skipped stretch, merging it into the previous one when they touch. */
const addRegion = (regions: CorruptRegion[], region: CorruptRegion): void => {
  const last = regions.at(-1);
  if (last !== undefined && last.offset + last.bytes === region.offset)
    regions[regions.length - 1] = { offset: last.offset, bytes: last.bytes + region.bytes };
  else regions.push(region);
};

/**
 * Reads a log in order. Yields each valid record's payload. A bad record (absurd length, CRC
 * mismatch) is skipped: the reader resynchronises on the next offset that holds a valid record
 * and notes the skipped stretch in `state.corrupt`; when no valid record follows, the rest is a
 * torn tail (a writer killed mid-record), counted by `state.size - state.offset`.
 */
async function* records(
  file: string,
  state: { offset: number; size: number; corrupt: CorruptRegion[] },
): AsyncGenerator<{ payload: Uint8Array; offset: number }> {
  let handle: FileHandle;
  try {
    handle = await open(file, "r");
  } catch (cause) {
    throw new TrajectoryLogError({
      file,
      cause,
      message: `cannot open trajectory log ${file}: ${String(cause)}`,
    });
  }
  try {
    const size = (await handle.stat()).size;
    state.size = size;
    if (size === 0) return;
    const head = new Uint8Array(HEADER);
    const { bytesRead } = await handle.read(head, 0, HEADER, 0);
    if (bytesRead < HEADER) {
      // A writer killed while writing the header: a torn, empty log.
      if (hasMagic(Uint8Array.from([...head.subarray(0, bytesRead), ...MAGIC.subarray(bytesRead)]))) return;
      throw new TrajectoryLogError({
        file,
        offset: 0,
        message: `${file} is not a trajectory log (no WR1TLOG header)`,
      });
    }
    if (!hasMagic(head))
      throw new TrajectoryLogError({
        file,
        offset: 0,
        message: `${file} is not a trajectory log (no WR1TLOG v1 header)`,
      });
    state.offset = HEADER;
    const window = new Window(handle, size);
    let at = HEADER;
    while (at + RECORD_HEAD <= size) {
      const payload = await validRecord(window, at);
      if (payload === undefined) {
        const next = await resync(window, at + 1);
        if (next === undefined) return; // a torn tail
        addRegion(state.corrupt, { offset: at, bytes: next - at });
        at = next;
        continue;
      }
      const end = at + RECORD_HEAD + payload.length;
      state.offset = end;
      yield { payload, offset: at };
      at = end;
    }
  } finally {
    await handle.close();
  }
}

/**
 * A streamed read of a trajectory log: an async iterable of every valid record. After iteration,
 * `records` counts them, `ignoredBytes` says how many bytes of torn tail were skipped, and
 * `corruptRegions` lists the stretches skipped mid-file (bad records, or records that do not
 * decode as trajectories), each resynchronised on the next valid record.
 */
export class TrajectoryLogReader implements AsyncIterable<Trajectory> {
  records = 0;
  ignoredBytes = 0;
  /** File size seen when reading began. */
  bytes = 0;
  corruptRegions: CorruptRegion[] = [];
  readonly file: string;
  constructor(file: string) {
    this.file = file;
  }

  /** Bytes in {@link corruptRegions}. */
  get corruptBytes(): number {
    return this.corruptRegions.reduce((n, r) => n + r.bytes, 0);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Trajectory> {
    this.records = 0;
    const state = { offset: 0, size: 0, corrupt: [] as CorruptRegion[] };
    this.corruptRegions = state.corrupt;
    for await (const { payload, offset } of records(this.file, state)) {
      let trajectory: Trajectory;
      try {
        trajectory = decodeTrajectory(payload);
      } catch {
        // A record whose checksum holds but whose content is not a trajectory: skipped like a
        // corrupt one (the writer only ever writes trajectories).
        addRegion(state.corrupt, { offset, bytes: RECORD_HEAD + payload.length });
        continue;
      }
      this.records++;
      this.bytes = state.size;
      this.ignoredBytes = state.size - state.offset;
      yield trajectory;
    }
    this.bytes = state.size;
    this.ignoredBytes = state.size - state.offset;
  }
}

/** Streams the trajectories of a log file (see {@link TrajectoryLogReader}). */
export const readTrajectoryLog = (file: string): TrajectoryLogReader => new TrajectoryLogReader(file);

/** Reads a whole log: every valid record, the torn-tail bytes ignored and the corrupt regions skipped. */
export const readTrajectoryLogAll = async (
  file: string,
): Promise<{
  readonly trajectories: Trajectory[];
  readonly ignoredBytes: number;
  readonly corruptRegions: ReadonlyArray<CorruptRegion>;
  /** Bytes in `corruptRegions`. */
  readonly corruptBytes: number;
}> => {
  const reader = readTrajectoryLog(file);
  const trajectories: Trajectory[] = [];
  for await (const t of reader) trajectories.push(t);
  return {
    trajectories,
    ignoredBytes: reader.ignoredBytes,
    corruptRegions: reader.corruptRegions,
    corruptBytes: reader.corruptBytes,
  };
};

const scan = async (file: string): Promise<Scan> => {
  const state = { offset: 0, size: 0, corrupt: [] as CorruptRegion[] };
  const ends: number[] = [];
  for await (const { payload, offset } of records(file, state))
    ends.push(offset + RECORD_HEAD + payload.length);
  return { end: state.offset, records: ends.length, size: state.size, ends };
};

/**
 * Appends trajectories to a log, one `write` per record, in call order. Writes are serialised, so
 * `append` may be called from many fibers at once.
 */
export class TrajectoryLogWriter {
  /** One permit: writes run one at a time, in call order (the learner and policy serialise the same way). */
  private readonly lock = Semaphore.makeUnsafe(1);
  private closed = false;
  private written = 0;

  readonly file: string;
  private readonly handle: FileHandle;
  private readonly fsync: FsyncPolicy;
  /** Records already in the file when it was opened. */
  readonly existingRecords: number;
  /** Torn-tail bytes cut off when the file was opened. */
  readonly truncatedBytes: number;
  /** Whole records cut off by `keepRecords` when the file was opened. */
  readonly truncatedRecords: number;

  // Plain fields rather than parameter properties: the crash test runs this file with Node's type stripping.
  private constructor(
    file: string,
    handle: FileHandle,
    fsync: FsyncPolicy,
    existingRecords: number,
    truncatedBytes: number,
    truncatedRecords: number,
  ) {
    this.file = file;
    this.handle = handle;
    this.fsync = fsync;
    this.existingRecords = existingRecords;
    this.truncatedBytes = truncatedBytes;
    this.truncatedRecords = truncatedRecords;
  }

  /**
   * Opens (creating, or continuing after the last whole record of) a log. Corrupt stretches inside
   * an existing log are left in place (readers skip them); only a torn tail is cut, and, with
   * `keepRecords`, every record after the kept ones.
   */
  static async open(file: string, options: TrajectoryLogWriterOptions = {}): Promise<TrajectoryLogWriter> {
    const fail = (cause: unknown) =>
      new TrajectoryLogError({
        file,
        cause,
        message: `cannot open trajectory log ${file} for writing: ${String(cause)}`,
      });
    let exists = true;
    try {
      await stat(file);
    } catch {
      exists = false;
    }
    const keep = options.keepRecords;
    if (keep !== undefined && !(Number.isInteger(keep) && keep >= 0))
      throw new TrajectoryLogError({ file, message: `keepRecords must be an integer ≥ 0, got ${keep}` });
    let existing = 0;
    let truncated = 0;
    let truncatedRecords = 0;
    let handle: FileHandle;
    try {
      handle = await open(file, exists ? "r+" : "w");
    } catch (cause) {
      throw fail(cause);
    }
    try {
      if (exists) {
        const s = await scan(file);
        existing = s.records;
        let end = s.end;
        if (keep !== undefined) {
          if (keep > s.records)
            throw new TrajectoryLogError({
              file,
              message: `cannot keep ${keep} records of ${file}: it holds ${s.records}`,
            });
          truncatedRecords = s.records - keep;
          existing = keep;
          if (keep < s.records) end = keep === 0 ? HEADER : s.ends[keep - 1]!;
        }
        if (end < HEADER) {
          await handle.truncate(0);
          await handle.write(MAGIC, 0, HEADER, 0);
          truncated = s.size;
        } else if (end < s.size) {
          await handle.truncate(end);
          truncated = s.size - end;
        }
      } else {
        if (keep !== undefined && keep > 0)
          throw new TrajectoryLogError({
            file,
            message: `cannot keep ${keep} records of ${file}: it does not exist`,
          });
        await handle.write(MAGIC, 0, HEADER, 0);
      }
    } catch (cause) {
      await handle.close();
      throw cause instanceof TrajectoryLogError ? cause : fail(cause);
    }
    await handle.close();
    // Reopen in append mode: every write lands at the end, whatever else happened.
    try {
      handle = await open(file, "a");
    } catch (cause) {
      throw fail(cause);
    }
    return new TrajectoryLogWriter(
      file,
      handle,
      options.fsync ?? "close",
      existing,
      truncated,
      truncatedRecords,
    );
  }

  /** Records appended through this writer. */
  get records(): number {
    return this.written;
  }

  /**
   * Appends one trajectory as an Effect: fails with a TrajectoryLogError naming the file. Appends
   * take the writer's one permit in call order, so records land in the order `write` was called.
   */
  write(trajectory: Trajectory): Effect.Effect<void, TrajectoryLogError> {
    if (this.closed)
      return Effect.fail(
        new TrajectoryLogError({ file: this.file, message: `trajectory log ${this.file} is closed` }),
      );
    const bytes = frame(encodeTrajectory(trajectory));
    return this.lock.withPermits(1)(
      Effect.tryPromise({
        try: async () => {
          let done = 0;
          while (done < bytes.length) {
            const { bytesWritten } = await this.handle.write(bytes, done, bytes.length - done);
            done += bytesWritten;
          }
          if (this.fsync === "record") await this.handle.sync();
          this.written++;
        },
        catch: (cause) =>
          new TrajectoryLogError({
            file: this.file,
            cause,
            message: `cannot write to trajectory log ${this.file}: ${String(cause)}`,
          }),
      }),
    );
  }

  /** {@link write} as a Promise; resolves once the record is handed to the kernel (and synced under "record"). */
  append(trajectory: Trajectory): Promise<void> {
    return Effect.runPromise(this.write(trajectory));
  }

  /** Waits for pending writes, syncs (unless fsync is "none") and closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Taking the permit waits for every write queued before the close.
    await Effect.runPromise(this.lock.withPermits(1)(Effect.void));
    try {
      if (this.fsync !== "none") await this.handle.sync();
    } finally {
      await this.handle.close();
    }
  }
}

/** A writer for the life of the scope (closed, and synced per its policy, when the scope closes). */
export const trajectoryLogWriter = (
  file: string,
  options: TrajectoryLogWriterOptions = {},
): Effect.Effect<TrajectoryLogWriter, TrajectoryLogError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () => TrajectoryLogWriter.open(file, options),
      catch: (cause) =>
        cause instanceof TrajectoryLogError
          ? cause
          : new TrajectoryLogError({
              file,
              cause,
              message: `cannot open trajectory log ${file}: ${String(cause)}`,
            }),
    }),
    (writer) => Effect.promise(() => writer.close().catch(() => undefined)),
  );

/** `writer.write` as a function, e.g. for `rollout`'s `onTrajectory`. */
export const appendTrajectory = (
  writer: TrajectoryLogWriter,
  trajectory: Trajectory,
): Effect.Effect<void, TrajectoryLogError> => writer.write(trajectory);
