/**
 * Property tests over random batches: coefficients are the gradient of the loss (central finite
 * differences away from clip boundaries and the logS cap), and the equivalences of SPEC.md.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type Aggregation,
  type KlEstimator,
  logRatioCap,
  type PolicyLossConfig,
  type PolicyLossTrajectory,
  policyLoss,
  type UnitKind,
  unitsFromMask,
} from "../src/index.js";

interface Case {
  readonly batch: PolicyLossTrajectory[];
  readonly config: PolicyLossConfig & { units: UnitKind; clipLow: number; clipHigh: number };
}

const unitKinds: UnitKind[] = ["token", "sequence", "subsequence"];
const aggregations: Aggregation[] = ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"];
const estimators: KlEstimator[] = ["k1", "k2", "k3"];

const trajectoryArb = (scale: number, maskArb: fc.Arbitrary<number[]>) =>
  maskArb.chain((mask) =>
    fc.record({
      mask: fc.constant(mask),
      logpOld: fc.array(fc.double({ min: -6, max: -0.01, noNaN: true }), {
        minLength: mask.length,
        maxLength: mask.length,
      }),
      noise: fc.array(fc.double({ min: -scale, max: scale, noNaN: true }), {
        minLength: mask.length,
        maxLength: mask.length,
      }),
      refNoise: fc.array(fc.double({ min: -0.5, max: 0.5, noNaN: true }), {
        minLength: mask.length,
        maxLength: mask.length,
      }),
      advantage: fc.double({ min: -2, max: 2, noNaN: true }),
    }),
  );

const anyMask = fc.array(fc.integer({ min: 0, max: 1 }), { minLength: 1, maxLength: 10 });

const caseArb = (maskArb: fc.Arbitrary<number[]> = anyMask): fc.Arbitrary<Case> =>
  fc
    .record({
      // ratios from tiny (GSPO-sized) to PPO-sized deviations
      scale: fc.constantFrom(1e-4, 1e-2, 0.3, 1),
      units: fc.constantFrom(...unitKinds),
      aggregation: fc.constantFrom(...aggregations),
      clip: fc.constantFrom([0.2, 0.2], [0.2, 0.28], [3e-4, 4e-4], [0.05, 0.1]),
      dualClip: fc.constantFrom(null, 1.5, 3),
      klCoef: fc.constantFrom(0, 0, 0.1),
      klEstimator: fc.constantFrom(...estimators),
    })
    .chain((c) =>
      fc.record({
        config: fc.constant({
          variant: "grpo",
          units: c.units,
          aggregation: c.aggregation,
          clipLow: c.clip[0]!,
          clipHigh: c.clip[1]!,
          dualClip: c.dualClip,
          klCoef: c.klCoef,
          klEstimator: c.klEstimator,
        }),
        batch: fc.array(trajectoryArb(c.scale, maskArb), { minLength: 1, maxLength: 4 }).map((ts) =>
          ts.map((t) => ({
            mask: t.mask,
            logpOld: t.logpOld,
            logpNew: t.logpOld.map((o, k) => o + t.noise[k]!),
            logpRef: t.logpOld.map((o, k) => o + t.refNoise[k]!),
            advantage: t.advantage,
          })),
        ),
      }),
    );

/** Distance in log space from the unit's logS to the nearest point where the loss has a kink. */
const kinkDistance = (logS: number, advantage: number, config: Case["config"]) => {
  const kinks = [Math.log(1 - config.clipLow), Math.log(1 + config.clipHigh), logRatioCap];
  if (config.dualClip !== null && config.dualClip !== undefined && advantage < 0)
    kinks.push(Math.log(config.dualClip));
  return Math.min(...kinks.map((k) => Math.abs(logS - k)));
};

describe("coefficients = dLoss/dlogpNew (central finite differences)", () => {
  it("holds for every unit kind, aggregation, clip range, dual clip and KL estimator", () => {
    const h = 1e-6;
    let checked = 0;
    let checkedNonZero = 0;
    fc.assert(
      fc.property(caseArb(), ({ batch, config }) => {
        const result = policyLoss(batch, config);
        batch.forEach((trajectory, i) => {
          const ids = unitsFromMask(trajectory.mask, config.units);
          // logS per unit, from the raw arrays
          const sums = new Map<number, [number, number]>();
          for (let t = 0; t < ids.length; t++) {
            if (ids[t]! < 0) continue;
            const [s, n] = sums.get(ids[t]!) ?? [0, 0];
            sums.set(ids[t]!, [s + trajectory.logpNew[t]! - trajectory.logpOld[t]!, n + 1]);
          }
          for (let t = 0; t < ids.length; t++) {
            const c = result.coefficients[i]![t]!;
            if (ids[t]! < 0) {
              expect(c).toBe(0);
              continue;
            }
            const [s, n] = sums.get(ids[t]!)!;
            // a ±h move of one token moves logS by h/n: stay well away from every kink
            if (kinkDistance(s / n, trajectory.advantage, config) < 100 * h) continue;
            const at = (delta: number) => {
              const logpNew = Array.from(trajectory.logpNew);
              logpNew[t] = logpNew[t]! + delta;
              return policyLoss(
                batch.map((b, k) => (k === i ? { ...b, logpNew } : b)),
                config,
              ).loss;
            };
            const fd = (at(h) - at(-h)) / (2 * h);
            expect(Math.abs(c - fd)).toBeLessThan(1e-6 * (1 + Math.abs(c)));
            checked++;
            if (c !== 0) checkedNonZero++;
          }
        });
      }),
      { numRuns: 300, seed: 20260201 },
    );
    // the filter must leave plenty of real checks, many with a live gradient
    expect(checked).toBeGreaterThan(500);
    expect(checkedNonZero).toBeGreaterThan(200);
  });
});

const expectSameResult = (a: ReturnType<typeof policyLoss>, b: ReturnType<typeof policyLoss>) => {
  expect(a.loss).toBeCloseTo(b.loss, 12);
  expect(a.coefficients.length).toBe(b.coefficients.length);
  a.coefficients.forEach((c, i) => {
    const other = b.coefficients[i]!;
    for (let t = 0; t < c.length; t++) expect(c[t]).toBeCloseTo(other[t]!, 12);
  });
  expect(a.metrics).toEqual(b.metrics);
};

describe("equivalences", () => {
  // mask = zeros, one run of ones, zeros: exactly one unit per trajectory
  const oneRun = fc
    .tuple(fc.nat({ max: 3 }), fc.integer({ min: 1, max: 6 }), fc.nat({ max: 3 }))
    .map(([a, k, b]) => [...new Array(a).fill(0), ...new Array(k).fill(1), ...new Array(b).fill(0)]);
  // no two adjacent ones: every sub-sequence is a single token
  const isolated = fc
    .array(fc.boolean(), { minLength: 1, maxLength: 10 })
    .map((bits) => bits.flatMap((b) => (b ? [1, 0] : [0])));

  it("one unit per trajectory ⇒ subsequence == sequence", () => {
    fc.assert(
      fc.property(caseArb(oneRun), ({ batch, config }) => {
        expectSameResult(
          policyLoss(batch, { ...config, units: "subsequence" }),
          policyLoss(batch, { ...config, units: "sequence" }),
        );
      }),
      { numRuns: 200 },
    );
  });

  it("every unit a single token ⇒ subsequence == token (same ε, aggregation, dual clip)", () => {
    fc.assert(
      fc.property(caseArb(isolated), ({ batch, config }) => {
        expectSameResult(
          policyLoss(batch, { ...config, units: "subsequence" }),
          policyLoss(batch, { ...config, units: "token" }),
        );
      }),
      { numRuns: 200 },
    );
  });

  it("variants differ only in their units: gsspo with gspo's units equals gspo", () => {
    fc.assert(
      fc.property(caseArb(), ({ batch }) => {
        expectSameResult(
          policyLoss(batch, { variant: "gsspo", units: "sequence" }),
          policyLoss(batch, { variant: "gspo" }),
        );
      }),
      { numRuns: 100 },
    );
  });
});

describe("masked-out positions", () => {
  it("are never read, whatever the unit kind or KL setting", () => {
    // logp arrays that throw when a mask-0 position is read
    const guarded = (values: number[], mask: number[]) =>
      new Proxy(values, {
        get(target, key, receiver) {
          if (typeof key === "string" && /^\d+$/.test(key) && mask[Number(key)] === 0)
            throw new Error(`read masked-out position ${key}`);
          return Reflect.get(target, key, receiver);
        },
      });
    const mask = [0, 0, 1, 1, 0, 1, 0];
    const values = [Number.NaN, Number.NaN, -1, -2, Number.NaN, -0.5, Number.NaN];
    for (const units of unitKinds) {
      const result = policyLoss(
        [
          {
            mask,
            logpNew: guarded(values, mask),
            logpOld: guarded(values, mask),
            logpRef: guarded(values, mask),
            advantage: 1,
          },
        ],
        { units, klCoef: 0.1 },
      );
      expect(result.coefficients[0]![0]).toBe(0);
      expect(result.coefficients[0]![4]).toBe(0);
      expect(Number.isFinite(result.loss)).toBe(true);
    }
  });
});
