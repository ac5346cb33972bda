/**
 * Search-R1-style parquet (`question` plus `golden_answers` or `reward_model.ground_truth.target`)
 * → core `Task`s, read with hyparquet (pure JS, no native code).
 */
import { DatasetError, type Task } from "@workflow-r1/core";
import { Effect, Result, Schema } from "effect";
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } from "hyparquet";
import { defaultDataset, defaultSplit, type LoadOptions, searchR1Question } from "./flashrag.js";
import { issueField, issueReason } from "./issues.js";

const Answers = Schema.Union([Schema.Array(Schema.String), Schema.String]);

/** One Search-R1 row: the columns the loader reads (others are ignored). */
export const SearchR1Row = Schema.Struct({
  id: Schema.optional(Schema.NullOr(Schema.Union([Schema.String, Schema.Number, Schema.BigInt]))),
  question: Schema.String,
  golden_answers: Schema.optional(Schema.NullOr(Answers)),
  data_source: Schema.optional(Schema.NullOr(Schema.String)),
  reward_model: Schema.optional(
    Schema.NullOr(
      Schema.Struct({
        ground_truth: Schema.optional(
          Schema.NullOr(Schema.Struct({ target: Schema.optional(Schema.NullOr(Answers)) })),
        ),
      }),
    ),
  ),
  extra_info: Schema.optional(
    Schema.NullOr(
      Schema.Struct({
        split: Schema.optional(Schema.NullOr(Schema.String)),
        index: Schema.optional(Schema.NullOr(Schema.Union([Schema.Number, Schema.BigInt]))),
      }),
    ),
  ),
});

const decodeRow = Schema.decodeUnknownResult(SearchR1Row);
const COLUMNS = ["id", "question", "golden_answers", "data_source", "reward_model", "extra_info"];

const fail = (file: string, row: number, message: string, field?: string) =>
  new DatasetError({
    message: `${file} row ${row}: ${field === undefined ? "" : `field "${field}": `}${message}`,
    file,
    line: row,
    ...(field === undefined ? {} : { field }),
  });

/** Validate one parquet row (0-based `row` for the error). */
export const searchR1Task = (
  value: unknown,
  where: { readonly file: string; readonly row: number },
  options: LoadOptions = {},
): Result.Result<Task, DatasetError> => {
  const decoded = decodeRow(value);
  if (Result.isFailure(decoded)) {
    const field = issueField(decoded.failure);
    return Result.fail(fail(where.file, where.row, `${issueReason(decoded.failure)}`, field));
  }
  const r = decoded.success;
  const answers = r.golden_answers ?? r.reward_model?.ground_truth?.target;
  if (answers === undefined || answers === null) {
    return Result.fail(
      fail(
        where.file,
        where.row,
        "missing answers: expected golden_answers or reward_model.ground_truth.target (string[])",
        "golden_answers",
      ),
    );
  }
  const id = r.id ?? r.extra_info?.index ?? where.row;
  return Result.succeed({
    id: String(id),
    question: options.searchR1Question === true ? searchR1Question(r.question) : r.question,
    goldenAnswers: typeof answers === "string" ? [answers] : answers,
    metadata: {
      dataset: options.dataset ?? r.data_source ?? defaultDataset(where.file),
      split: options.split ?? r.extra_info?.split ?? defaultSplit(where.file),
    },
  });
};

/** Load the tasks of a Search-R1-style parquet file (`train.parquet`, `test.parquet`). */
export const loadSearchR1Parquet = (
  file: string,
  options: LoadOptions = {},
): Effect.Effect<Task[], DatasetError> =>
  Effect.gen(function* () {
    const rows = yield* Effect.tryPromise({
      try: async () => {
        const buffer = await asyncBufferFromFile(file);
        const metadata = await parquetMetadataAsync(buffer);
        const present = new Set(parquetSchema(metadata).children.map((c) => c.element.name));
        const columns = COLUMNS.filter((c) => present.has(c));
        return parquetReadObjects({
          file: buffer,
          metadata,
          columns,
          ...(options.limit === undefined ? {} : { rowEnd: options.limit }),
        });
      },
      catch: (cause) =>
        new DatasetError({
          message: `${file}: cannot read parquet (${cause instanceof Error ? cause.message : String(cause)})`,
          file,
        }),
    });
    const tasks: Task[] = [];
    for (const [row, value] of rows.entries()) {
      tasks.push(yield* Effect.fromResult(searchR1Task(value, { file, row }, options)));
    }
    return tasks;
  });
