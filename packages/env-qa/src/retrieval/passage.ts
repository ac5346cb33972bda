/** FlashRAG / Search-R1 corpus records: `{id, contents}` where `contents` is `"Title"\ntext`. */
import { Schema } from "effect";

export const CorpusDocument = Schema.Struct({
  id: Schema.Union([Schema.String, Schema.Number]),
  contents: Schema.String,
});
export type CorpusDocument = typeof CorpusDocument.Type;

/** Split FlashRAG `contents` into title (first line, surrounding quotes removed) and text (the rest). */
export const splitContents = (contents: string): { readonly title: string; readonly text: string } => {
  const newline = contents.indexOf("\n");
  const first = newline < 0 ? contents : contents.slice(0, newline);
  const text = newline < 0 ? "" : contents.slice(newline + 1);
  const trimmed = first.trim();
  const title =
    trimmed.length >= 2 && trimmed.startsWith('"') && trimmed.endsWith('"') ? trimmed.slice(1, -1) : trimmed;
  return { title, text: text.trim() };
};
