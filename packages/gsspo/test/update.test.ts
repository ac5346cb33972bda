/**
 * The update around the loss: failed episodes and uniform groups left out, the plan of epochs ×
 * mini-batches, truncated importance sampling, mismatch metrics — and the whole path equal, bit for
 * bit, to the trainer's update before it moved here.
 */
import { mulberry32, Random, type Trajectory, TrajectoryBuilder } from "@workflow-r1/core";
import { describe, expect, it } from "vitest";
import {
  type AlgorithmConfig,
  dropUniformGroups,
  mismatchMetrics,
  PolicyLossInputError,
  policyLoss,
  prepareUpdate,
  resolveAlgorithmConfig,
  tisWeights,
  UpdateState,
  updatePlan,
  usableTrajectories,
} from "../src/index.js";
import { runUpdate } from "./fixtures/driver.js";
import { type LegacyConfig, legacyUpdate } from "./fixtures/legacy-update.js";
import { fakeLearner, randomRollout } from "./fixtures/trajectories.js";

const trajectory = (
  groupId: string,
  reward: number,
  options: { error?: string; sampled?: number[] } = {},
): Trajectory => {
  const b = new TrajectoryBuilder([1, 2]);
  const sampled = options.sampled ?? [-0.5, -1];
  if (sampled.length > 0)
    b.appendSampled(
      sampled.map((_, i) => 10 + i),
      sampled,
    );
  return b.build({
    reward,
    rewardParts: { em: reward > 0 ? 1 : 0 },
    groupId,
    taskId: groupId,
    turns: [],
    finishReason: options.error ? "error" : "answer",
    ...(options.error && { error: options.error }),
  });
};

describe("group filtering", () => {
  it("excludes failed episodes and episodes with nothing sampled", () => {
    const kept = usableTrajectories([
      trajectory("a", 1),
      trajectory("a", 0, { error: "PolicyError: boom" }),
      trajectory("b", 1, { sampled: [] }),
    ]);
    expect(kept).toHaveLength(1);
  });

  it("drops groups whose rewards are all equal and counts them", () => {
    const result = dropUniformGroups([
      trajectory("a", 1),
      trajectory("a", 1),
      trajectory("b", 1),
      trajectory("b", 0),
      trajectory("c", 0.5),
    ]);
    expect(result.groups).toBe(3);
    expect(result.droppedGroups).toBe(1);
    // A group of one keeps its only member (its advantage is r / (1 + eps), not zero).
    expect(result.kept.map((t) => t.groupId)).toEqual(["b", "b", "c"]);
  });

  it("is an option: dropUniformGroups false keeps uniform groups (advantage 0)", () => {
    const rollout = [trajectory("a", 1), trajectory("a", 1), trajectory("b", 1), trajectory("b", 0)];
    const random = new Random(1);
    const on = prepareUpdate(rollout, resolveAlgorithmConfig({ name: "gsspo" }), random);
    expect(on.metrics).toEqual({
      "episodes/failed": 0,
      "groups/total": 2,
      "groups/dropped_uniform": 1,
      "update/trajectories": 2,
    });
    const off = prepareUpdate(
      rollout,
      resolveAlgorithmConfig({ name: "gsspo", dropUniformGroups: false }),
      random,
    );
    expect(off.metrics).toMatchObject({ "groups/dropped_uniform": 0, "update/trajectories": 4 });
    expect(Array.from(off.advantages.slice(0, 2))).toEqual([0, 0]);
  });

  it("an empty batch is skipped without drawing from the RNG", () => {
    let draws = 0;
    const batch = prepareUpdate(
      [trajectory("a", 1), trajectory("a", 1), trajectory("b", 0, { error: "x" })],
      resolveAlgorithmConfig({ name: "gsspo", miniBatches: 4 }),
      { shuffle: () => draws++ },
    );
    expect(batch.plan).toEqual([]);
    expect(batch.metrics).toMatchObject({
      "update/skipped": 1,
      "episodes/failed": 1,
      "update/trajectories": 0,
    });
    expect(draws).toBe(0);
  });
});

describe("update plan", () => {
  it("epochs × mini-batches: each epoch reshuffles the previous order and splits it k mod M", () => {
    const a = new Random(7);
    const b = new Random(7);
    const plan = updatePlan(10, { ppoEpochs: 2, miniBatches: 3 }, a);
    expect(plan).toHaveLength(6);
    const order = Array.from({ length: 10 }, (_, i) => i);
    const expected: number[][] = [];
    for (let epoch = 0; epoch < 2; epoch++) {
      b.shuffle(order);
      for (let m = 0; m < 3; m++) expected.push(order.filter((_, k) => k % 3 === m));
    }
    expect(plan).toEqual(expected);
    // every epoch covers the batch once, in disjoint mini-batches
    for (const epoch of [plan.slice(0, 3), plan.slice(3)])
      expect(epoch.flat().sort((x, y) => x - y)).toEqual(Array.from({ length: 10 }, (_, i) => i));
  });

  it("never more mini-batches than trajectories", () => {
    const plan = updatePlan(3, { ppoEpochs: 1, miniBatches: 8 }, new Random(1));
    expect(plan.map((m) => m.length)).toEqual([1, 1, 1]);
  });
});

describe("truncated importance sampling", () => {
  it("weights min(π_learner/π_sampler, cap) on sampled tokens, 0 elsewhere", () => {
    const t = trajectory("a", 1, { sampled: [-0.5, -1] });
    const learner = [Float32Array.from([Number.NaN, Number.NaN, -0.4, -1.5])];
    const [w] = tisWeights([t], learner, 1.05);
    expect(Array.from(w!)).toEqual([
      0,
      0,
      Math.min(Math.exp(Math.fround(-0.4) - -0.5), 1.05),
      Math.exp(-1.5 - -1),
    ]);
    expect(w![2]).toBe(1.05);
  });

  it("scales the loss's coefficients token by token (and leaves the loss as it is)", () => {
    const rollout = randomRollout(mulberry32(3), 3, 4);
    const learner = fakeLearner();
    const algorithm = resolveAlgorithmConfig({ name: "grpo", tisCap: 1.0005, miniBatches: 1 });
    const batch = prepareUpdate(rollout, algorithm, new Random(4));
    const logpOld = learner.logprobs(batch.sequences);
    const members = batch.plan[0]!;
    const logpNew = members.map((i) => logpOld[i]!.map((v) => v + 0.01));
    const { coefficients, result } = new UpdateState(algorithm, batch, logpOld).step(0, logpNew);
    const plain = policyLoss(
      members.map((i, k) => ({
        logpNew: logpNew[k]!,
        logpOld: logpOld[i]!,
        mask: batch.trajectories[i]!.mask,
        advantage: batch.advantages[i]!,
      })),
      { variant: "grpo" },
    );
    expect(result.loss).toBe(plain.loss);
    const weights = tisWeights(batch.trajectories, logpOld, 1.0005);
    let truncated = 0;
    members.forEach((i, k) => {
      for (let p = 0; p < coefficients[k]!.length; p++) {
        expect(coefficients[k]![p]).toBe(plain.coefficients[k]![p]! * weights[i]![p]!);
        if (weights[i]![p] === 1.0005) truncated++;
      }
    });
    expect(truncated).toBeGreaterThan(0);
  });
});

describe("sampler–learner mismatch", () => {
  it("is measured on sampled tokens only", () => {
    const t = trajectory("a", 1, { sampled: [-0.5, -1] });
    const same = mismatchMetrics([t], [Float32Array.from(t.samplerLogprobs)]);
    expect(same["mismatch/abs_mean"]).toBe(0);
    expect(same["mismatch/kl"]).toBe(0);
    const shifted = Float32Array.from(t.samplerLogprobs, (v) => v - 0.1);
    const m = mismatchMetrics([t], [shifted]);
    expect(m["mismatch/abs_mean"]).toBeCloseTo(0.1, 6);
    expect(m["mismatch/kl"]).toBeCloseTo(Math.exp(-0.1) - 1 + 0.1, 6);
  });
});

describe("the whole update equals the trainer's update before the move (bit for bit)", () => {
  const cases: Array<[string, LegacyConfig, AlgorithmConfig]> = [
    [
      "the default run: gsspo, 4 mini-batches",
      {
        algorithm: { name: "gsspo", klCoef: 0, klEstimator: "k3", normalizeByStd: true, tisCap: null },
        learner: { ppoEpochs: 1, miniBatches: 4 },
      },
      { name: "gsspo", klCoef: 0, klEstimator: "k3", normalizeByStd: true, tisCap: null, miniBatches: 4 },
    ],
    [
      "grpo with TIS, clip overrides, 2 epochs",
      {
        algorithm: {
          name: "grpo",
          clipLow: 1e-4,
          clipHigh: 2e-4,
          dualClip: 2,
          klCoef: 0,
          klEstimator: "k3",
          normalizeByStd: false,
          tisCap: 1.0002,
        },
        learner: { ppoEpochs: 2, miniBatches: 3 },
      },
      {
        name: "grpo",
        clipLow: 1e-4,
        clipHigh: 2e-4,
        dualClip: 2,
        klCoef: 0,
        klEstimator: "k3",
        normalizeByStd: false,
        tisCap: 1.0002,
        ppoEpochs: 2,
        miniBatches: 3,
      },
    ],
    [
      "gspo, token-sum aggregation, k2 KL to a reference",
      {
        algorithm: {
          name: "gspo",
          aggregation: "seq-mean-token-sum",
          klCoef: 0.01,
          klEstimator: "k2",
          normalizeByStd: true,
          tisCap: null,
        },
        learner: { ppoEpochs: 1, miniBatches: 2 },
      },
      {
        name: "gspo",
        aggregation: "seq-mean-token-sum",
        klCoef: 0.01,
        klEstimator: "k2",
        normalizeByStd: true,
        tisCap: null,
        miniBatches: 2,
      },
    ],
  ];

  it.each(cases)("%s", (_label, legacy, config) => {
    for (const seed of [1, 2, 3]) {
      const rollout = randomRollout(mulberry32(seed), 6, 4, { failures: true });
      const oldLearner = fakeLearner();
      const newLearner = fakeLearner();
      const reference = fakeLearner();
      const expected = legacyUpdate(rollout, legacy, oldLearner, new Random(seed + 100), reference);
      const actual = runUpdate(rollout, config, newLearner, new Random(seed + 100), reference);
      expect(actual).toEqual(expected);
      expect(newLearner.backward).toEqual(oldLearner.backward);
      expect(newLearner.backward.length).toBeGreaterThan(0);
    }
  });

  it("a rollout without signal is skipped the same way", () => {
    const rollout = [trajectory("a", 1), trajectory("a", 1)];
    const legacy = legacyUpdate(
      rollout,
      {
        algorithm: { name: "gsspo", klCoef: 0, klEstimator: "k3", normalizeByStd: true, tisCap: null },
        learner: { ppoEpochs: 1, miniBatches: 4 },
      },
      fakeLearner(),
      new Random(1),
    );
    expect(runUpdate(rollout, { name: "gsspo", miniBatches: 4 }, fakeLearner(), new Random(1))).toEqual(
      legacy,
    );
  });
});

describe("an update refuses what the learner got wrong, with a typed error", () => {
  const rollout = randomRollout(mulberry32(5), 2, 4);
  const algorithm = resolveAlgorithmConfig({ name: "gsspo", miniBatches: 2 });
  const batch = prepareUpdate(rollout, algorithm, new Random(6));
  const logpOld = fakeLearner().logprobs(batch.sequences);

  const thrown = (run: () => unknown) => {
    try {
      run();
    } catch (error) {
      return error;
    }
    throw new Error("expected a throw");
  };

  it("names the array and the trajectory", () => {
    expect(thrown(() => new UpdateState(algorithm, batch, logpOld.slice(1)))).toBeInstanceOf(
      PolicyLossInputError,
    );
    const short = logpOld.map((a, i) => (i === 1 ? a.slice(1) : a));
    expect(thrown(() => new UpdateState(algorithm, batch, short))).toMatchObject({
      field: "logpOld",
      trajectory: 1,
    });
    const state = new UpdateState(algorithm, batch, logpOld);
    expect(thrown(() => state.step(0, []))).toMatchObject({ _tag: "PolicyLossInputError", field: "logpNew" });
    expect(thrown(() => state.step(9, []))).toMatchObject({ field: "miniBatch" });
    const kl = resolveAlgorithmConfig({ name: "gsspo", klCoef: 0.001 });
    expect(thrown(() => new UpdateState(kl, batch, logpOld))).toMatchObject({
      field: "logpRef",
    });
  });
});
