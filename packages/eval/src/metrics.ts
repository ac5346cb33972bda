/**
 * Answer metrics (SQuAD / FlashRAG definitions). Interim copy until `@workflow-r1/env-qa`
 * publishes its metrics, which this module will then re-export so evaluation and the training
 * reward score answers identically.
 */

/** Lower-case, drop punctuation and the articles a/an/the, collapse whitespace. */
export const normalizeAnswer = (text: string): string =>
  text
    .toLowerCase()
    .replace(/[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g, "")
    .replace(/\b(a|an|the)\b/g, " ")
    .split(/\s+/)
    .filter(Boolean)
    .join(" ");

export const exactMatch = (prediction: string, golden: ReadonlyArray<string>): number =>
  golden.some((g) => normalizeAnswer(g) === normalizeAnswer(prediction)) ? 1 : 0;

export const subExactMatch = (prediction: string, golden: ReadonlyArray<string>): number =>
  golden.some((g) => normalizeAnswer(prediction).includes(normalizeAnswer(g))) ? 1 : 0;

const tokenF1 = (prediction: string, golden: string): number => {
  const p = normalizeAnswer(prediction).split(" ").filter(Boolean);
  const g = normalizeAnswer(golden).split(" ").filter(Boolean);
  const counts = new Map<string, number>();
  for (const t of g) counts.set(t, (counts.get(t) ?? 0) + 1);
  let common = 0;
  for (const t of p) {
    const c = counts.get(t) ?? 0;
    if (c > 0) {
      common++;
      counts.set(t, c - 1);
    }
  }
  if (common === 0) return 0;
  const precision = common / p.length;
  const recall = common / g.length;
  return (2 * precision * recall) / (precision + recall);
};

export const f1Score = (prediction: string, golden: ReadonlyArray<string>): number =>
  golden.reduce((best, g) => Math.max(best, tokenF1(prediction, g)), 0);

/** EM, sub-EM and F1 of a prediction (max over golden answers); a missing answer scores 0. */
export const scorePrediction = (
  prediction: string | null,
  goldenAnswers: ReadonlyArray<string>,
): { readonly em: number; readonly subEm: number; readonly f1: number } =>
  prediction === null || goldenAnswers.length === 0
    ? { em: 0, subEm: 0, f1: 0 }
    : {
        em: Number(exactMatch(prediction, goldenAnswers)),
        subEm: Number(subExactMatch(prediction, goldenAnswers)),
        f1: Number(f1Score(prediction, goldenAnswers)),
      };
