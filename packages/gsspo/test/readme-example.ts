import { groupAdvantages, policyLoss } from "@workflow-r1/gsspo";

// Two rollouts of one task, rewards 1 and 0 → advantages ≈ +0.71 and −0.71.
const advantages = groupAdvantages([1, 0], ["task-7", "task-7"]);
// prompt token (mask 0), a 2-token turn, an observation token (mask 0), a 1-token turn
const mask = new Uint8Array([0, 1, 1, 0, 1]);
const logpOld = [Number.NaN, -1.2, -0.4, Number.NaN, -2.0];
const logpNew = [Number.NaN, -1.1999, -0.4, Number.NaN, -2.0005];
const batch = Array.from(advantages, (advantage) => ({ logpNew, logpOld, mask, advantage }));
const { loss, coefficients, metrics } = policyLoss(batch, { variant: "gsspo" });
console.log(loss, coefficients[0], metrics.unitClipFraction);
