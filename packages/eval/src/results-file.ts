/**
 * The resumable results file: one JSON line per scored question. A re-run reads it and skips the
 * questions it already holds; a line cut short by a crash (the last one) is ignored.
 */
import { appendFile, mkdir, readFile, truncate } from "node:fs/promises";
import { dirname } from "node:path";
import { Effect } from "effect";
import { ResultsFileError } from "./errors.js";
import type { QuestionResult } from "./results.js";

/**
 * The identity of a result: a re-run skips a question whose key is already in the file. The
 * `configKey` (model, method, sampling settings, …; see `evaluationKey`) keeps another model's or
 * another setting's answers from being reported under this run's name.
 */
export const resultKey = (r: Pick<QuestionResult, "benchmark" | "method" | "taskId" | "configKey">): string =>
  `${r.benchmark}\u0000${r.method}\u0000${r.taskId}\u0000${r.configKey ?? ""}`;

const requiredFields = ["benchmark", "method", "taskId", "em", "subEm", "f1", "samples"] as const;

/**
 * Read every result in `file` (none when it does not exist); later lines replace earlier ones.
 * With `repair`, a torn final line is cut off the file so that appends start on a fresh line.
 */
export const readResults = (
  file: string,
  options: { readonly repair?: boolean } = {},
): Effect.Effect<QuestionResult[], ResultsFileError> =>
  Effect.gen(function* () {
    const text = yield* Effect.tryPromise({
      try: () => readFile(file, "utf8"),
      catch: (cause) => cause as NodeJS.ErrnoException,
    }).pipe(
      Effect.catch((error) =>
        error.code === "ENOENT"
          ? Effect.succeed("")
          : Effect.fail(
              new ResultsFileError({ message: `cannot read ${file}: ${error.message}`, file, cause: error }),
            ),
      ),
    );
    const lines = text.split("\n");
    const byKey = new Map<string, QuestionResult>();
    let torn = false;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.trim();
      if (line.length === 0) continue;
      let record: unknown;
      try {
        record = JSON.parse(line);
      } catch (cause) {
        // Only the final line may be torn (the process died mid-write); anything else is corruption.
        if (lines.slice(i + 1).every((l) => l.trim().length === 0)) {
          torn = true;
          if (options.repair) {
            const keep = Buffer.byteLength(
              lines
                .slice(0, i)
                .map((l) => `${l}\n`)
                .join(""),
            );
            yield* Effect.tryPromise({
              try: () => truncate(file, keep),
              catch: (cause) =>
                new ResultsFileError({ message: `cannot repair ${file}: ${String(cause)}`, file, cause }),
            });
          }
          break;
        }
        return yield* Effect.fail(
          new ResultsFileError({ message: `${file}:${i + 1}: not valid JSON`, file, line: i + 1, cause }),
        );
      }
      if (typeof record !== "object" || record === null)
        return yield* Effect.fail(
          new ResultsFileError({ message: `${file}:${i + 1}: expected a JSON object`, file, line: i + 1 }),
        );
      const missing = requiredFields.filter((f) => !(f in record));
      if (missing.length > 0)
        return yield* Effect.fail(
          new ResultsFileError({
            message: `${file}:${i + 1}: missing field(s) ${missing.join(", ")} of a question result`,
            file,
            line: i + 1,
          }),
        );
      const result = record as QuestionResult;
      byKey.set(resultKey(result), result);
    }
    if (options.repair && !torn && text.length > 0 && !text.endsWith("\n"))
      // A complete last record without its newline: end the line so the next append is separate.
      yield* Effect.tryPromise({
        try: () => appendFile(file, "\n"),
        catch: (cause) =>
          new ResultsFileError({ message: `cannot repair ${file}: ${String(cause)}`, file, cause }),
      });
    return [...byKey.values()];
  });

/** Append one result as a JSON line (creating the file and its directory when needed). */
export const appendResult = (file: string, result: QuestionResult): Effect.Effect<void, ResultsFileError> =>
  Effect.tryPromise({
    try: async () => {
      await mkdir(dirname(file), { recursive: true });
      // One write per line with O_APPEND: concurrent appends never interleave within a line.
      await appendFile(file, `${JSON.stringify(result)}\n`);
    },
    catch: (cause) =>
      new ResultsFileError({ message: `cannot append to ${file}: ${String(cause)}`, file, cause }),
  });
