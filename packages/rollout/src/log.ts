/**
 * The trajectory log: an append-only file of msgpack trajectories (core's `packr`).
 *
 * Layout: an 8-byte header `WR1TLOG` + version byte 1, then records, each
 * `[u32 LE payload length][u32 LE CRC-32 of the payload][payload]`. Each record goes to the kernel
 * in one `write` call, so a process killed at any moment leaves a prefix of whole records plus at
 * most one torn record at the end; the reader yields every whole record and reports how many tail
 * bytes it ignored. Opening an existing log for append first truncates such a torn tail, so new
 * records never land behind garbage.
 *
 * fsync policy (`fsync` option): a killed process loses nothing that was written (the data is in
 * the kernel's page cache), so the default `"close"` syncs only when the writer closes. Use
 * `"record"` to survive power loss or a kernel crash after each record, at the cost of one fsync
 * per trajectory (milliseconds on most disks); `"none"` never syncs.
 */

import type { FileHandle } from "node:fs/promises";
import { open, stat } from "node:fs/promises";
import { crc32 } from "node:zlib";
import { decodeTrajectory, encodeTrajectory, ParseError, type Trajectory } from "@workflow-r1/core";
import { Data, Effect, type Scope } from "effect";

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
}

const hasMagic = (bytes: Uint8Array): boolean => MAGIC.every((b, i) => bytes[i] === b);

/**
 * Reads a log in chunks. Yields each whole record's payload; stops at a torn tail (a record cut
 * short, or a last record whose checksum does not match). A bad checksum before the last record is
 * corruption and throws.
 */
async function* records(
  file: string,
  state: { offset: number; size: number },
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
    const chunk = 1 << 20;
    let buffer = new Uint8Array(0);
    let bufferStart = HEADER; // file offset of buffer[0]
    let fileOffset = HEADER;
    const fill = async (need: number): Promise<boolean> => {
      while (buffer.length < need && fileOffset < size) {
        const want = Math.max(chunk, need - buffer.length);
        const next = new Uint8Array(buffer.length + want);
        next.set(buffer);
        const { bytesRead: n } = await handle.read(next, buffer.length, want, fileOffset);
        if (n === 0) break;
        fileOffset += n;
        buffer = next.subarray(0, buffer.length + n);
      }
      return buffer.length >= need;
    };
    while (true) {
      if (!(await fill(RECORD_HEAD))) return;
      const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
      const length = view.getUint32(0, true);
      const checksum = view.getUint32(4, true);
      const at = bufferStart;
      if (length > MAX_RECORD) {
        if (at + RECORD_HEAD + length >= size) return;
        throw new TrajectoryLogError({
          file,
          offset: at,
          message: `${file}: record at byte ${at} claims ${length} bytes`,
        });
      }
      if (!(await fill(RECORD_HEAD + length))) return;
      const payload = buffer.slice(RECORD_HEAD, RECORD_HEAD + length);
      if (crc32(payload) !== checksum) {
        if (at + RECORD_HEAD + length >= size) return; // the last record was torn
        throw new TrajectoryLogError({
          file,
          offset: at,
          message: `${file}: record at byte ${at} fails its CRC-32 check`,
        });
      }
      buffer = buffer.subarray(RECORD_HEAD + length);
      bufferStart += RECORD_HEAD + length;
      state.offset = bufferStart;
      yield { payload, offset: at };
    }
  } finally {
    await handle.close();
  }
}

/**
 * A streamed read of a trajectory log: an async iterable of every whole record. After iteration,
 * `records` counts them and `ignoredBytes` says how many bytes of torn tail were skipped.
 */
export class TrajectoryLogReader implements AsyncIterable<Trajectory> {
  records = 0;
  ignoredBytes = 0;
  /** File size seen when reading began. */
  bytes = 0;
  readonly file: string;
  constructor(file: string) {
    this.file = file;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Trajectory> {
    this.records = 0;
    const state = { offset: 0, size: 0 };
    for await (const { payload, offset } of records(this.file, state)) {
      let trajectory: Trajectory;
      try {
        trajectory = decodeTrajectory(payload);
      } catch (cause) {
        throw new TrajectoryLogError({
          file: this.file,
          offset,
          cause,
          message: `${this.file}: record ${this.records} (byte ${offset}): ${cause instanceof Error || cause instanceof ParseError ? cause.message : String(cause)}`,
        });
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

/** Reads a whole log: every whole record, and the bytes of torn tail that were ignored. */
export const readTrajectoryLogAll = async (
  file: string,
): Promise<{ readonly trajectories: Trajectory[]; readonly ignoredBytes: number }> => {
  const reader = readTrajectoryLog(file);
  const trajectories: Trajectory[] = [];
  for await (const t of reader) trajectories.push(t);
  return { trajectories, ignoredBytes: reader.ignoredBytes };
};

const scan = async (file: string): Promise<Scan> => {
  const state = { offset: 0, size: 0 };
  let count = 0;
  for await (const _ of records(file, state)) count++;
  return { end: state.offset, records: count, size: state.size };
};

/**
 * Appends trajectories to a log, one `write` per record, in call order. Writes are serialised, so
 * `append` may be called from many fibers at once.
 */
export class TrajectoryLogWriter {
  private chain: Promise<void> = Promise.resolve();
  private closed = false;
  private written = 0;

  readonly file: string;
  private readonly handle: FileHandle;
  private readonly fsync: FsyncPolicy;
  /** Records already in the file when it was opened. */
  readonly existingRecords: number;
  /** Torn-tail bytes cut off when the file was opened. */
  readonly truncatedBytes: number;

  // Plain fields rather than parameter properties: the crash test runs this file with Node's type stripping.
  private constructor(
    file: string,
    handle: FileHandle,
    fsync: FsyncPolicy,
    existingRecords: number,
    truncatedBytes: number,
  ) {
    this.file = file;
    this.handle = handle;
    this.fsync = fsync;
    this.existingRecords = existingRecords;
    this.truncatedBytes = truncatedBytes;
  }

  /** Opens (creating, or continuing after the last whole record of) a log. */
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
    let existing = 0;
    let truncated = 0;
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
        if (s.end < HEADER) {
          await handle.truncate(0);
          await handle.write(MAGIC, 0, HEADER, 0);
          truncated = s.size;
        } else if (s.end < s.size) {
          await handle.truncate(s.end);
          truncated = s.size - s.end;
        }
      } else {
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
    return new TrajectoryLogWriter(file, handle, options.fsync ?? "close", existing, truncated);
  }

  /** Records appended through this writer. */
  get records(): number {
    return this.written;
  }

  /** Appends one trajectory; resolves once it has been handed to the kernel (and synced under "record"). */
  append(trajectory: Trajectory): Promise<void> {
    if (this.closed)
      return Promise.reject(
        new TrajectoryLogError({ file: this.file, message: `trajectory log ${this.file} is closed` }),
      );
    const bytes = frame(encodeTrajectory(trajectory));
    const next = this.chain.then(async () => {
      try {
        let done = 0;
        while (done < bytes.length) {
          const { bytesWritten } = await this.handle.write(bytes, done, bytes.length - done);
          done += bytesWritten;
        }
        if (this.fsync === "record") await this.handle.sync();
        this.written++;
      } catch (cause) {
        throw new TrajectoryLogError({
          file: this.file,
          cause,
          message: `cannot write to trajectory log ${this.file}: ${String(cause)}`,
        });
      }
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Waits for pending writes, syncs (unless fsync is "none") and closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.chain;
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

/** `writer.append` as an Effect, e.g. for `rollout`'s `onTrajectory`. */
export const appendTrajectory = (
  writer: TrajectoryLogWriter,
  trajectory: Trajectory,
): Effect.Effect<void, TrajectoryLogError> =>
  Effect.tryPromise({
    try: () => writer.append(trajectory),
    catch: (cause) =>
      cause instanceof TrajectoryLogError
        ? cause
        : new TrajectoryLogError({
            file: writer.file,
            cause,
            message: `cannot write to ${writer.file}: ${String(cause)}`,
          }),
  });
