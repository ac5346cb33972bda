import { type LearnerShape, type Trajectory, TrajectoryBuilder } from "@workflow-r1/core";
import { Algorithm, makeAlgorithm, registerPolicyLoss, unregisterPolicyLoss } from "@workflow-r1/gsspo";
import { Cause, Effect, Exit, Layer } from "effect";
import { describe, expect, it } from "vitest";
import { defaultTrainConfig } from "../src/config.js";
import { compareTable, finalAccuracy, stepsToThreshold } from "../src/train/compare.js";
import { renderDashboard } from "../src/train/dashboard.js";
import { nextTasks, rewardMetrics, summarize, trainerRandom } from "../src/train/loop.js";
import type { StepMetrics } from "../src/train/metrics-log.js";
import { updatePolicy } from "../src/train/update.js";

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

/** A learner stand-in: log-probabilities that move a little after every optimizer step; records every call. */
const fakeLearner = (options: { dropOne?: boolean } = {}) => {
  let version = 0;
  const calls: string[] = [];
  const backward: Float64Array[][] = [];
  const logp = (token: number, position: number) =>
    Math.fround(-1 - (token % 7) / 10 + version * ((((token * 31 + position * 7) % 17) - 8) * 1e-4));
  const learner: LearnerShape = {
    logprobs: (batch) =>
      Effect.sync(() => {
        calls.push(`logprobs ${batch.length}`);
        const out = batch.map((s) =>
          Float32Array.from(s.tokens, (tok, t) => (s.mask[t] === 1 ? logp(tok, t) : Number.NaN)),
        );
        return options.dropOne ? out.slice(1) : out;
      }),
    backward: (batch, coefficients) =>
      Effect.sync(() => {
        calls.push(`backward ${batch.length}`);
        backward.push(coefficients.map((c) => Float64Array.from(c)));
      }),
    step: () =>
      Effect.sync(() => {
        calls.push("step");
        version++;
        return { gradNorm: version, learningRate: 1e-3, step: version };
      }),
    save: () => Effect.void,
    exportAdapter: () => Effect.succeed(new Uint8Array(0)),
    saveState: () => Effect.void,
    loadState: () => Effect.void,
  };
  return { learner, calls, backward };
};

/** Two groups of four one-turn episodes (rewards 1, 0, 0, 1) of different lengths. */
const rollout = () =>
  ["a", "b"].flatMap((group) =>
    [1, 0, 0, 1].map((reward, i) => {
      const b = new TrajectoryBuilder([1, 2, 3]);
      const tokens = Array.from({ length: 3 + i + (group === "b" ? 2 : 0) }, (_, k) => 10 + k * 3 + i);
      b.appendSampled(
        tokens,
        tokens.map((tok) => Math.fround(-1 - (tok % 7) / 10)),
      );
      b.appendObservation([4, 5]);
      b.appendSampled([40 + i, 41], [Math.fround(-1 - ((40 + i) % 7) / 10), Math.fround(-1 - (41 % 7) / 10)]);
      return b.build({
        reward,
        rewardParts: {},
        groupId: group,
        taskId: group,
        turns: [],
        finishReason: "answer",
      });
    }),
  );

describe("the update: rollout → algorithm → learner", () => {
  it("calls the learner in plan order and logs the same metrics as before", async () => {
    const { learner, calls } = fakeLearner();
    const metrics = await Effect.runPromise(
      updatePolicy(rollout(), learner, trainerRandom(1)).pipe(
        Effect.provide(Algorithm.layer({ ...defaultTrainConfig.algorithm, miniBatches: 2 })),
      ),
    );
    // old logprobs for all 8; the first mini-batch reuses them, the second asks again
    expect(calls).toEqual(["logprobs 8", "backward 4", "step", "logprobs 4", "backward 4", "step"]);
    for (const key of [
      "episodes/failed",
      "groups/total",
      "groups/dropped_uniform",
      "update/trajectories",
      "loss",
      "clip_fraction",
      "unit_clip_fraction",
      "approx_kl",
      "ratio/mean",
      "ratio/min",
      "ratio/max",
      "grad_norm",
      "grad_norm_last",
      "mismatch/abs_mean",
      "mismatch/abs_max",
      "mismatch/kl",
      "entropy",
      "advantage/abs_mean",
      "time/learner_forward",
      "time/learner_backward",
      "time/optimizer",
      "time/algorithm",
      "learnerTokens",
    ])
      expect(Number.isFinite(metrics[key]), key).toBe(true);
    expect(metrics["grad_norm"]).toBe(1.5);
    expect(metrics["grad_norm_last"]).toBe(2);
    expect(metrics["update/trajectories"]).toBe(8);
  });

  it("a learner answer that does not fit the batch fails the update with the typed error, not a defect", async () => {
    const { learner } = fakeLearner({ dropOne: true });
    const exit = await Effect.runPromiseExit(
      updatePolicy(rollout(), learner, trainerRandom(1)).pipe(
        Effect.provide(Algorithm.layer(defaultTrainConfig.algorithm)),
      ),
    );
    expect(Exit.isFailure(exit)).toBe(true);
    if (Exit.isFailure(exit)) {
      expect(Cause.hasDies(exit.cause)).toBe(false);
      expect(Cause.squash(exit.cause)).toMatchObject({ _tag: "PolicyLossInputError", field: "logpOld" });
    }
  });

  it("a registered variant with its own surrogate runs end to end: backward gets dLoss/dlogpNew", async () => {
    // A smooth objective in place of the clip: ℓ = −A·(1 + tanh(τ(s − 1))/τ), dℓ/dlogS = −A·s·sech²(τ(s − 1)).
    registerPolicyLoss("tanh-clip", {
      extends: "gsspo",
      surrogate: ({ ratio, advantage }, settings) => {
        const tau = 1 / settings.clipHigh;
        const th = Math.tanh(tau * (ratio - 1));
        return { value: -advantage * (1 + th / tau), slope: -advantage * ratio * (1 - th * th) };
      },
    });
    try {
      const { learner, backward } = fakeLearner();
      const config = { ...defaultTrainConfig.algorithm, name: "tanh-clip", miniBatches: 2 };
      const algorithm = makeAlgorithm(config);
      const trajectories = rollout();
      await Effect.runPromise(
        updatePolicy(trajectories, learner, trainerRandom(1)).pipe(
          Effect.provide(Layer.succeed(Algorithm, algorithm)),
        ),
      );
      // Replay the second mini-batch (weights moved once) and differentiate its loss numerically.
      const batch = Effect.runSync(algorithm.prepare(trajectories, trainerRandom(1)));
      const before = fakeLearner();
      const logpOld = Effect.runSync(before.learner.logprobs(batch.sequences));
      Effect.runSync(before.learner.step());
      const members = batch.plan[1]!;
      const logpNew = Effect.runSync(before.learner.logprobs(members.map((i) => batch.sequences[i]!)));
      const lossAt = (k: number, p: number, h: number) =>
        Effect.runSync(
          algorithm.loss(
            members.map((i, j) => ({
              logpNew:
                j === k ? Float64Array.from(logpNew[j]!, (v, q) => (q === p ? v + h : v)) : logpNew[j]!,
              logpOld: logpOld[i]!,
              mask: batch.trajectories[i]!.mask,
              segments: batch.trajectories[i]!.segments,
              advantage: batch.advantages[i]!,
            })),
          ),
        ).loss;
      let checked = 0;
      members.forEach((i, k) => {
        const mask = batch.trajectories[i]!.mask;
        for (let p = 0; p < mask.length; p++) {
          const c = backward[1]![k]![p]!;
          if (mask[p] !== 1) {
            expect(c).toBe(0);
            continue;
          }
          expect(c).toBeCloseTo((lossAt(k, p, 1e-7) - lossAt(k, p, -1e-7)) / 2e-7, 6);
          checked++;
        }
      });
      expect(checked).toBeGreaterThan(20);
      expect(backward[1]!.some((c) => c.some((v) => Math.abs(v) > 1e-3))).toBe(true);
    } finally {
      unregisterPolicyLoss("tanh-clip");
    }
  });
});

describe("task order", () => {
  const tasks = Array.from({ length: 5 }, (_, i) => ({ id: `t${i}`, question: `q${i}` }));

  it("walks a per-epoch shuffle and continues exactly where a resumed run left off", () => {
    const whole = nextTasks(tasks, 8, { dataPosition: 0, epoch: 0 }, 3);
    const first = nextTasks(tasks, 3, { dataPosition: 0, epoch: 0 }, 3);
    const rest = nextTasks(tasks, 5, first, 3);
    expect([...first.tasks, ...rest.tasks].map((t) => t.id)).toEqual(whole.tasks.map((t) => t.id));
    expect(whole.epoch).toBe(1);
    expect(whole.dataPosition).toBe(3);
    // Every epoch visits every task once.
    expect(new Set(whole.tasks.slice(0, 5).map((t) => t.id)).size).toBe(5);
  });
});

describe("metrics and summaries", () => {
  it("aggregates rewards, accuracy and reward parts", () => {
    const m = rewardMetrics([trajectory("a", 1), trajectory("a", 0)]);
    expect(m["reward/mean"]).toBe(0.5);
    expect(m["reward/std"]).toBeCloseTo(Math.SQRT1_2, 10);
    expect(m["accuracy"]).toBe(0.5);
    expect(m["reward/em"]).toBe(0.5);
  });

  it("summarizes the first and last quarter of a run", () => {
    const rows = Array.from({ length: 8 }, (_, i) => ({ step: i + 1, "reward/mean": i, accuracy: i / 10 }));
    const s = summarize(rows);
    expect(s.rewardStart).toBe(0.5);
    expect(s.rewardEnd).toBe(6.5);
  });

  it("keeps the step-0 evaluation out of the training quarters and reports held-out accuracy", () => {
    const rows = [
      { step: 0, "eval/accuracy": 0.2 },
      ...Array.from({ length: 8 }, (_, i) => ({ step: i + 1, "reward/mean": i, accuracy: i / 10 })),
    ];
    rows[8] = { ...rows[8]!, "eval/accuracy": 0.6 };
    const s = summarize(rows);
    expect(s.steps).toBe(8);
    expect(s.rewardStart).toBe(0.5);
    expect(s.accuracyStart).toBeCloseTo(0.05);
    expect(s.evalAccuracyStart).toBe(0.2);
    expect(s.evalAccuracyEnd).toBe(0.6);
  });

  it("counts RL steps only in the dashboard's subtitle (step 0 is the starting evaluation)", () => {
    const rows: StepMetrics[] = [
      { step: 0, "eval/accuracy": 0.2 },
      { step: 1, "reward/mean": 0.1, accuracy: 0.1 },
      { step: 2, "reward/mean": 0.3, accuracy: 0.2, "eval/accuracy": 0.4 },
    ];
    const html = renderDashboard(rows, { ...defaultTrainConfig, steps: 5 });
    expect(html).toContain("2/5 steps");
    expect(html).toContain("eval/accuracy");
  });

  it("tabulates an algorithm comparison", () => {
    const rows: Record<string, number>[] = [
      { step: 1, accuracy: 0.1 },
      { step: 2, accuracy: 0.6, "eval/accuracy": 0.55 },
    ];
    expect(finalAccuracy(rows)).toBe(0.55);
    expect(stepsToThreshold(rows, 0.35, 2)).toBe(2);
    expect(stepsToThreshold(rows, 0.9, 2)).toBeNull();
    // A single lucky step does not count: the trailing mean of the window must reach the threshold.
    const noisy = [0.1, 0.9, 0.1, 0.5, 0.6, 0.7].map((accuracy, i) => ({ step: i + 1, accuracy }));
    expect(stepsToThreshold([{ step: 0, "eval/accuracy": 0.9 }, ...noisy], 0.5, 3)).toBe(4);
    expect(stepsToThreshold(noisy, 0.5, 1)).toBe(2);
    const table = compareTable(
      [
        {
          algorithm: "gsspo",
          finalAccuracy: [0.5, 0.7],
          curveArea: [0.4, 0.6],
          clipFraction: [0.1, 0.3],
          stepsToThreshold: [3, null],
        },
      ],
      0.5,
    );
    expect(table).toContain("| gsspo | 0.600 [");
    expect(table).toContain("| 0.200 | 0.600 ± 0.141 | 3, — |");
  });
});
