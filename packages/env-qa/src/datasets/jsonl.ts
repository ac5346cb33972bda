/** Line-by-line JSONL reading in constant memory, with errors that name the file and line. */
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { DatasetError } from "@workflow-r1/core";
import { Stream } from "effect";

export interface JsonlRecord {
  /** 1-based line number in the file. */
  readonly line: number;
  readonly value: unknown;
}

async function* readJsonl(file: string): AsyncGenerator<JsonlRecord> {
  const input = createReadStream(file, { encoding: "utf8" });
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  let line = 0;
  try {
    for await (const text of lines) {
      line++;
      if (text.trim() === "") continue; // blank lines (e.g. a trailing newline) carry no record
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (cause) {
        throw new DatasetError({
          message: `${file}:${line}: not valid JSON (${cause instanceof Error ? cause.message : String(cause)})`,
          file,
          line,
        });
      }
      yield { line, value };
    }
  } finally {
    lines.close();
    input.destroy();
  }
}

/**
 * Stream the records of a JSONL file one line at a time (blank lines skipped). Memory stays constant
 * whatever the file size; the file is closed when the stream ends or is interrupted.
 */
export const streamJsonl = (file: string): Stream.Stream<JsonlRecord, DatasetError> =>
  Stream.fromAsyncIterable({ [Symbol.asyncIterator]: () => readJsonl(file) }, (cause) =>
    cause instanceof DatasetError
      ? cause
      : new DatasetError({
          message: `${file}: cannot read (${cause instanceof Error ? cause.message : String(cause)})`,
          file,
        }),
  );
