/**
 * Answer metrics. The definitions live in `@workflow-r1/env-qa` (FlashRAG's normalisation, EM,
 * sub-EM, F1; Workflow-R1's format score and reward) and are re-exported here, so evaluation and
 * the training reward score answers identically.
 */
import { exactMatch, f1Score, subExactMatch } from "@workflow-r1/env-qa";

export {
  exactMatch,
  f1Score,
  formatScore,
  normalizeAnswer,
  subExactMatch,
  workflowR1Reward,
} from "@workflow-r1/env-qa";

/** EM, sub-EM and F1 of a prediction (max over golden answers); a missing answer scores 0. */
export const scorePrediction = (
  prediction: string | null,
  goldenAnswers: ReadonlyArray<string>,
): { readonly em: number; readonly subEm: number; readonly f1: number } =>
  prediction === null || goldenAnswers.length === 0
    ? { em: 0, subEm: 0, f1: 0 }
    : {
        em: exactMatch(prediction, goldenAnswers),
        subEm: subExactMatch(prediction, goldenAnswers),
        f1: f1Score(prediction, goldenAnswers),
      };
