/**
 * Answer metrics exactly as FlashRAG / the Workflow-R1 authors compute them in Python: EM, sub-EM and
 * token F1 over SQuAD-style normalised text. Python semantics are emulated where JS differs:
 * `\b` is Unicode-aware in Python 3 (`[\p{L}\p{N}_]` word characters), `string.punctuation` is the
 * ASCII punctuation set only, and `str.split()` splits on Python's Unicode whitespace.
 */

/** Python's `string.punctuation`. */
const PUNCTUATION = new Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~");

/** `re.sub(r"\b(a|an|the)\b", " ", text)` with Python 3's Unicode word boundaries. */
const ARTICLES = /(?<![\p{L}\p{N}_])(?:a|an|the)(?![\p{L}\p{N}_])/gu;

/**
 * The characters for which Python's `str.isspace()` is true (what `str.split()` and `str.strip()`
 * use). Built from a string so the control characters \x1c-\x1f stay readable escapes.
 */
const PY_SPACE =
  "[\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
const PY_WHITESPACE = new RegExp(`${PY_SPACE}+`, "u");
const PY_STRIP = new RegExp(`^${PY_SPACE}+|${PY_SPACE}+$`, "gu");

/** Python's `str.strip()` with no argument (JS `trim` differs: it strips U+FEFF, keeps \x1c-\x1f and U+0085). */
export const pyStrip = (text: string): string => text.replace(PY_STRIP, "");

/** Python's `str.split()` with no argument: split on whitespace runs, drop empty strings. */
export const pySplit = (text: string): ReadonlyArray<string> =>
  text.split(PY_WHITESPACE).filter((token) => token.length > 0);

/** SQuAD / FlashRAG `normalize_answer`: lower-case, drop punctuation, drop articles, collapse whitespace. */
export const normalizeAnswer = (text: string): string => {
  const lower = text.toLowerCase();
  let noPunctuation = "";
  for (const ch of lower) if (!PUNCTUATION.has(ch)) noPunctuation += ch;
  return pySplit(noPunctuation.replace(ARTICLES, " ")).join(" ");
};

/** 1 when the normalised prediction equals any normalised golden answer, else 0. */
export const exactMatch = (prediction: string, golden: ReadonlyArray<string>): number => {
  const p = normalizeAnswer(prediction);
  return golden.some((g) => normalizeAnswer(g) === p) ? 1 : 0;
};

/** 1 when any normalised golden answer is a substring of the normalised prediction, else 0. */
export const subExactMatch = (prediction: string, golden: ReadonlyArray<string>): number => {
  const p = normalizeAnswer(prediction);
  return golden.some((g) => p.includes(normalizeAnswer(g))) ? 1 : 0;
};

const SPECIAL = new Set(["yes", "no", "noanswer"]);

export interface TokenScores {
  readonly f1: number;
  readonly precision: number;
  readonly recall: number;
}

/**
 * FlashRAG `token_level_scores`: token-overlap F1 / precision / recall on normalised text, each the
 * maximum over golden answers; a pair scores 0 when either side is yes/no/noanswer and they differ.
 */
export const tokenScores = (prediction: string, golden: ReadonlyArray<string>): TokenScores => {
  let f1 = 0;
  let precision = 0;
  let recall = 0;
  const p = normalizeAnswer(prediction);
  const pTokens = pySplit(p);
  for (const g of golden) {
    const gn = normalizeAnswer(g);
    if ((SPECIAL.has(p) || SPECIAL.has(gn)) && p !== gn) continue;
    const gTokens = pySplit(gn);
    const counts = new Map<string, number>();
    for (const t of gTokens) counts.set(t, (counts.get(t) ?? 0) + 1);
    let same = 0;
    for (const t of pTokens) {
      const c = counts.get(t) ?? 0;
      if (c > 0) {
        same += 1;
        counts.set(t, c - 1);
      }
    }
    if (same === 0) continue;
    const pr = same / pTokens.length;
    const rc = same / gTokens.length;
    f1 = Math.max(f1, (2 * pr * rc) / (pr + rc));
    precision = Math.max(precision, pr);
    recall = Math.max(recall, rc);
  }
  return { f1, precision, recall };
};

/** Token F1 (FlashRAG): maximum over golden answers, yes/no/noanswer must match exactly. */
export const f1Score = (prediction: string, golden: ReadonlyArray<string>): number =>
  tokenScores(prediction, golden).f1;
