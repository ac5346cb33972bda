/**
 * The in-training held-out evaluation is greedy by default (`evalTemperature: 0`), while RL
 * rollouts sample at `rollout.temperature`; a non-zero evalTemperature is honoured.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Effect } from "effect";
import { describe, expect, it } from "vitest";
import { runTrain } from "../src/index.js";
import { smallRun } from "./fixtures/settings.js";

/** Train 2 steps with evaluation and return the temperatures the policy was asked to sample at. */
const temperaturesSeen = async (overrides: Record<string, unknown>) => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-evaltemp-"));
  const seen = new Set<number>();
  try {
    const rows = await runTrain({
      overrides: { ...smallRun(out, 2), evalTasks: 4, evalEvery: 1, ...overrides },
      wrapPolicy: (p) => ({
        ...p,
        openSequence: (prompt) =>
          Effect.map(p.openSequence(prompt), (sequence) => ({
            ...sequence,
            generate: (append, options) => {
              seen.add(options.temperature ?? 1);
              return sequence.generate(append, options);
            },
          })),
      }),
    });
    expect(rows.filter((r) => r["eval/accuracy"] !== undefined).map((r) => r["step"])).toEqual([0, 1, 2]);
    return [...seen].sort();
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
};

describe("held-out evaluation during training", () => {
  it("is greedy by default and samples RL rollouts at temperature 1", async () => {
    expect(await temperaturesSeen({})).toEqual([0, 1]);
  }, 120_000);

  it("honours evalTemperature", async () => {
    expect(await temperaturesSeen({ evalTemperature: 0.5 })).toEqual([0.5, 1]);
  }, 120_000);
});
