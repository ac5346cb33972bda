/**
 * Crash-safe file writes over Effect's `FileSystem` service: a reader (or a run resumed after
 * `kill -9`) sees either the old content of a file or the new one, never a torn file.
 */
import * as path from "node:path";
import { Effect, FileSystem } from "effect";

/** fsync a directory so a rename inside it survives a crash. */
export const fsyncDirectory = (dir: string) =>
  Effect.scoped(
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem;
      const handle = yield* fs.open(dir, { flag: "r" });
      yield* handle.sync;
    }),
  );

/** Write a temp file in the same directory, fsync it, rename it over `file`, fsync the directory. */
export const writeFileAtomic = (file: string, data: string | Uint8Array) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem;
    const dir = path.dirname(file);
    yield* fs.makeDirectory(dir, { recursive: true });
    const temp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}`);
    yield* Effect.scoped(
      Effect.gen(function* () {
        const handle = yield* fs.open(temp, { flag: "w" });
        yield* handle.writeAll(typeof data === "string" ? new TextEncoder().encode(data) : data);
        yield* handle.sync;
      }),
    );
    yield* fs.rename(temp, file);
    yield* fsyncDirectory(dir);
  });
