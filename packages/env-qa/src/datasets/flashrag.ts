/** FlashRAG QA jsonl (`{id, question, golden_answers}`) → core `Task`s. */
import path from "node:path";
import { DatasetError, type Task } from "@workflow-r1/core";
import { Effect, Result, Schema, Stream } from "effect";
import { issueField, issueReason } from "./issues.js";
import { streamJsonl } from "./jsonl.js";

/** One FlashRAG record. `id` may be a number in some exports; `metadata` and other keys are ignored. */
export const FlashRagRecord = Schema.Struct({
  id: Schema.Union([Schema.String, Schema.Number]),
  question: Schema.String,
  golden_answers: Schema.Array(Schema.String),
});
export type FlashRagRecord = typeof FlashRagRecord.Type;

export interface LoadOptions {
  /** `metadata.dataset`. Default: the file's directory name (e.g. `hotpotqa`). */
  readonly dataset?: string;
  /** `metadata.split`. Default: the file name up to its first dot (e.g. `dev` for `dev.sample500.jsonl`). */
  readonly split?: string;
  /** Apply Search-R1's preprocessing: strip, then add `?` when the last character is not `?`. */
  readonly searchR1Question?: boolean;
  /** Read at most this many records. */
  readonly limit?: number;
}

/** Search-R1 (`qa_search_*_merge.py`): `question.strip()`, then append `?` unless it ends with one. */
export const searchR1Question = (question: string): string => {
  const stripped = question.trim();
  return stripped.endsWith("?") ? stripped : `${stripped}?`;
};

export const defaultDataset = (file: string): string => path.basename(path.dirname(path.resolve(file)));
export const defaultSplit = (file: string): string => path.basename(file).split(".")[0] ?? "";

const decodeRecord = Schema.decodeUnknownResult(FlashRagRecord);

/** Validate one parsed record (file and line only for the error). */
export const flashRagTask = (
  value: unknown,
  where: { readonly file: string; readonly line: number },
  meta: { readonly dataset: string; readonly split: string; readonly searchR1Question?: boolean },
): Result.Result<Task, DatasetError> => {
  const decoded = decodeRecord(value);
  if (Result.isFailure(decoded)) {
    const field = issueField(decoded.failure);
    return Result.fail(
      new DatasetError({
        message: `${where.file}:${where.line}: ${field === undefined ? "record" : `field "${field}"`}: ${issueReason(decoded.failure)} (expected {id: string, question: string, golden_answers: string[]})`,
        file: where.file,
        line: where.line,
        ...(field === undefined ? {} : { field }),
      }),
    );
  }
  const record = decoded.success;
  return Result.succeed({
    id: String(record.id),
    question: meta.searchR1Question === true ? searchR1Question(record.question) : record.question,
    goldenAnswers: record.golden_answers,
    metadata: { dataset: meta.dataset, split: meta.split },
  });
};

/** Stream the tasks of a FlashRAG jsonl file (constant memory). */
export const streamFlashRagJsonl = (
  file: string,
  options: LoadOptions = {},
): Stream.Stream<Task, DatasetError> => {
  const meta = {
    dataset: options.dataset ?? defaultDataset(file),
    split: options.split ?? defaultSplit(file),
    ...(options.searchR1Question === undefined ? {} : { searchR1Question: options.searchR1Question }),
  };
  const tasks = streamJsonl(file).pipe(
    Stream.mapEffect(({ line, value }) => Effect.fromResult(flashRagTask(value, { file, line }, meta))),
  );
  return options.limit === undefined ? tasks : Stream.take(tasks, options.limit);
};

/** Load every task of a FlashRAG jsonl file. */
export const loadFlashRagJsonl = (
  file: string,
  options: LoadOptions = {},
): Effect.Effect<Task[], DatasetError> => Stream.runCollect(streamFlashRagJsonl(file, options));
