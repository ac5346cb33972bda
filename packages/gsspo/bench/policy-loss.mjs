// Policy loss + coefficients over ~1M tokens: 512 trajectories × 2048 tokens, each a prompt
// (mask 0), 4 Think-Action cycles (mask 1) separated by observations (mask 0). Float32 logprobs
// as the learner returns them. Prints tokens/s (all positions, and masked positions) per variant.
// Run: npm run bench (builds first through nx) or `npx tsc -b && node bench/policy-loss.mjs`.
import os from "node:os";
import { policyLoss } from "@workflow-r1/gsspo";

const B = 512;
const LEN = 2048;
const CYCLES = 4;

// Deterministic PRNG (mulberry32) so every run measures the same batch.
let seed = 0x5eed;
const random = () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
  return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
};

const batch = [];
let masked = 0;
for (let i = 0; i < B; i++) {
  const mask = new Uint8Array(LEN);
  const prompt = 96 + Math.floor(random() * 64);
  // split the rest into 4 cycles and 3 observation gaps of random sizes
  const rest = LEN - prompt;
  let t = prompt;
  for (let c = 0; c < CYCLES; c++) {
    const cycle = Math.floor((rest / CYCLES) * (0.6 + 0.2 * random()));
    for (let k = 0; k < cycle && t < LEN; k++) mask[t++] = 1;
    t += Math.floor((rest / CYCLES) * 0.15 * random()) + 8; // observation tokens (mask 0)
  }
  const logpOld = new Float32Array(LEN);
  const logpNew = new Float32Array(LEN);
  const logpRef = new Float32Array(LEN);
  for (let k = 0; k < LEN; k++) {
    if (mask[k] === 0) {
      logpOld[k] = logpNew[k] = logpRef[k] = Number.NaN; // as the learner returns them
      continue;
    }
    masked++;
    logpOld[k] = Math.log(0.02 + 0.98 * random());
    logpNew[k] = logpOld[k] + (random() - 0.5) * 0.02;
    logpRef[k] = logpOld[k] + (random() - 0.5) * 0.1;
  }
  batch.push({ logpNew, logpOld, logpRef, mask, advantage: (random() - 0.5) * 2 });
}
const tokens = B * LEN;

const measure = (label, config) => {
  for (let w = 0; w < 10; w++) policyLoss(batch, config); // warm up the JIT
  const times = [];
  let sink = 0;
  for (let r = 0; r < 30; r++) {
    const start = process.hrtime.bigint();
    const result = policyLoss(batch, config);
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
    sink += result.loss;
  }
  times.sort((a, b) => a - b);
  const ms = times[Math.floor(times.length / 2)];
  const row = {
    variant: label,
    "median ms": ms.toFixed(2),
    "min ms": times[0].toFixed(2),
    "Mtokens/s": (tokens / ms / 1e3).toFixed(1),
    "masked Mtokens/s": (masked / ms / 1e3).toFixed(1),
  };
  if (!Number.isFinite(sink)) throw new Error("non-finite loss");
  return row;
};

console.log(
  `policyLoss bench: ${B} trajectories × ${LEN} tokens = ${tokens} tokens (${masked} masked, ${CYCLES} cycles each); ` +
    `node ${process.version}, ${os.cpus()[0]?.model ?? "cpu"} × ${os.cpus().length}`,
);
console.table([
  measure("grpo", { variant: "grpo" }),
  measure("gspo", { variant: "gspo" }),
  measure("gsspo", { variant: "gsspo" }),
  measure("gsspo + k3 KL (β = 0.001)", { variant: "gsspo", klCoef: 0.001, klEstimator: "k3" }),
]);
