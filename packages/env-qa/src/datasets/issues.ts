/** Turn a Schema decoding failure into the dotted field it is about and a one-line reason. */
import type { SchemaError } from "effect/Schema";

interface IssueLike {
  readonly _tag: string;
  readonly path?: ReadonlyArray<PropertyKey>;
  readonly issue?: IssueLike;
  readonly issues?: ReadonlyArray<IssueLike>;
}

const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path
    .map((key, i) => (typeof key === "number" ? `[${key}]` : i === 0 ? String(key) : `.${String(key)}`))
    .join("");

/** The path of the first issue (e.g. `golden_answers[1]`), or undefined when the whole record is wrong. */
export const issueField = (error: SchemaError): string | undefined => {
  const path: PropertyKey[] = [];
  let issue: IssueLike | undefined = error.issue as unknown as IssueLike;
  while (issue !== undefined) {
    if (issue._tag === "Pointer") {
      path.push(...(issue.path ?? []));
      issue = issue.issue;
    } else if (issue._tag === "Composite") {
      issue = issue.issues?.[0];
    } else break;
  }
  return path.length === 0 ? undefined : formatPath(path);
};

/** The first line of the Schema message ("Expected string", "Missing key", …). */
export const issueReason = (error: SchemaError): string =>
  (error.message.split("\n")[0] ?? error.message).trim();
