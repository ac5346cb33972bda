/**
 * Crash and resume: a child `workflow-r1 train` is killed with SIGKILL mid-run; `--resume`
 * continues from the last complete checkpoint, and the resumed steps really train (the step
 * counter and data position continue, the weights change, no step is logged twice).
 */
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { TrajectoryBuilder } from "@workflow-r1/core";
import { readTrajectoryLogAll, TrajectoryLogWriter } from "@workflow-r1/rollout";
import { describe, expect, it } from "vitest";
import { smallRun } from "./fixtures/settings.js";

const cli = path.resolve(import.meta.dirname, "../dist/cli.js");

const run = (args: string[]): ChildProcess =>
  spawn(process.execPath, [cli, ...args], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, CI: "1" },
  });

const exitOf = (child: ChildProcess, stderr: string[]) =>
  new Promise<number | null>((resolve) => {
    child.stderr?.on("data", (d) => stderr.push(String(d)));
    child.on("exit", (code) => resolve(code));
  });

const metricSteps = (out: string) =>
  fs.existsSync(path.join(out, "metrics.jsonl"))
    ? fs
        .readFileSync(path.join(out, "metrics.jsonl"), "utf8")
        .split("\n")
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l).step as number)
    : [];

/** A one-step arith run whose warm start (`warmStartSteps`) is checkpointed every 10 steps. */
const warmRun = (out: string, warmStartSteps: number) => ({
  out,
  steps: 1,
  evalTasks: 0,
  environment: { name: "arith", options: { steps: 1 } },
  model: {
    tiny: { dim: 64, layers: 2, heads: 2, kvHeads: 1, ffn: 128, context: 512 },
    contextSize: 512,
    threads: 1,
  },
  warmStart: { steps: warmStartSteps, batchSize: 8, learningRate: 0.01, checkpointEvery: 10 },
  rollout: { tasksPerStep: 2, groupSize: 4, maxConcurrentEpisodes: 8, maxTurns: 3, maxTokens: 72 },
  learner: { learningRate: 0.0001, threads: 1 },
});

describe("crash and resume", () => {
  it("continues a SIGKILLed run from its last complete checkpoint", async () => {
    expect(fs.existsSync(cli), `${cli} missing: build the package first (nx runs build before test)`).toBe(
      true,
    );
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-resume-"));
    const out = path.join(dir, "run");
    const configFile = path.join(dir, "config.json");
    fs.writeFileSync(configFile, JSON.stringify(smallRun(out, 6)));

    const first = run(["train", "-c", configFile]);
    const firstLog: string[] = [];
    const firstExit = exitOf(first, firstLog);
    const deadline = Date.now() + 300_000;
    while (metricSteps(out).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    first.kill("SIGKILL");
    await firstExit;
    expect(metricSteps(out).length, firstLog.join("")).toBeGreaterThanOrEqual(2);

    const latest = fs.readFileSync(path.join(out, "checkpoints", "latest"), "utf8").trim();
    const killedState = JSON.parse(
      fs.readFileSync(path.join(out, "checkpoints", latest, "state.json"), "utf8"),
    );
    const killedWeights = fs.readFileSync(path.join(out, "checkpoints", latest, "policy.gguf"));
    expect(killedState.step).toBeGreaterThanOrEqual(1);
    expect(killedState.step).toBeLessThan(6);

    // Episodes the killed attempt logged after its checkpoint (made certain here: a kill may land
    // before or after the next rollout's first records).
    const writer = await TrajectoryLogWriter.open(path.join(out, "trajectories.msgpack"));
    for (let i = 0; i < 5; i++) {
      const b = new TrajectoryBuilder([1, 2]);
      b.appendSampled([3], [-1]);
      await writer.append(
        b.build({
          reward: 0,
          rewardParts: {},
          groupId: "s99-killed",
          taskId: "killed",
          turns: [],
          finishReason: "answer",
        }),
      );
    }
    await writer.close();

    const second = run(["train", "-c", configFile, "--resume"]);
    const secondLog: string[] = [];
    expect(await exitOf(second, secondLog), secondLog.join("")).toBe(0);
    expect(secondLog.join("")).toContain(`resumed from`);
    expect(secondLog.join("")).toMatch(
      /trajectory log cut back to \d+ records \(\d+ from after the checkpoint dropped\)/,
    );

    // Every step exactly once, in order, with the resumed ones after the checkpoint.
    expect(metricSteps(out)).toEqual([1, 2, 3, 4, 5, 6]);
    const finalState = JSON.parse(
      fs.readFileSync(path.join(out, "checkpoints", "step-000006", "state.json"), "utf8"),
    );
    expect(finalState.step).toBe(6);
    // 3 tasks per step over 12 tasks: 18 tasks drawn → epoch 1, position 6, as an uninterrupted run.
    expect(finalState.epoch).toBe(1);
    expect(finalState.dataPosition).toBe(6);
    expect(finalState.rngState).not.toBe(killedState.rngState);
    const finalWeights = fs.readFileSync(path.join(out, "checkpoints", "step-000006", "policy.gguf"));
    expect(finalWeights.length).toBe(killedWeights.length);
    expect(finalWeights.equals(killedWeights)).toBe(false);
    // The trajectory log holds each step's episodes once: the killed attempt's episodes past the
    // checkpoint were cut on resume (3 tasks × 6 episodes a step).
    const { trajectories } = await readTrajectoryLogAll(path.join(out, "trajectories.msgpack"));
    const perStep = new Map<string, number>();
    for (const t of trajectories) {
      const step = t.groupId.split("-")[0]!;
      perStep.set(step, (perStep.get(step) ?? 0) + 1);
    }
    expect(Object.fromEntries(perStep)).toEqual(
      Object.fromEntries([1, 2, 3, 4, 5, 6].map((k) => [`s${k}`, 18])),
    );
    // No partial checkpoint directories are left behind.
    expect(fs.readdirSync(path.join(out, "checkpoints")).filter((e) => e.includes(".partial-"))).toEqual([]);
  }, 600_000);

  it("Ctrl-C (SIGINT) mid-backward ends the run cleanly: status 130, one line, no crash; --resume finishes it", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-sigint-"));
    const out = path.join(dir, "run");
    const configFile = path.join(dir, "config.json");
    // The warm start is learner work almost throughout, so the signal lands during a native backward:
    // freeing the learner under it (what an interrupted scope would do) crashed the process.
    fs.writeFileSync(configFile, JSON.stringify(warmRun(out, 60)));
    const first = run(["train", "-c", configFile]);
    const firstLog: string[] = [];
    const firstExit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      first.stderr?.on("data", (d) => firstLog.push(String(d)));
      first.on("exit", (code, signal) => resolve({ code, signal }));
    });
    const deadline = Date.now() + 240_000;
    while (!fs.existsSync(path.join(out, "checkpoints", "latest")) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    first.kill("SIGINT");
    const { code, signal } = await firstExit;
    const log = firstLog.join("");
    expect({ code, signal }, log).toEqual({ code: 130, signal: null });
    expect(log).toContain(
      "workflow-r1: interrupted; a training run continues from its last checkpoint with --resume",
    );
    expect(log).not.toMatch(/^\s+at /m);

    const second = run(["train", "-c", configFile, "--resume"]);
    const secondLog: string[] = [];
    expect(await exitOf(second, secondLog), secondLog.join("")).toBe(0);
    expect(secondLog.join("")).toContain("resumed the warm start");
    expect(metricSteps(out)).toEqual([1]);
  }, 400_000);

  it("resumes a run killed during the warm start at its checkpoint, with the warm start's own schedule", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-resume-warm-"));
    const finalNll = (log: string) => {
      const m = /\[warm-start\] step 300\/300 demonstration NLL\/token ([\d.]+)/.exec(log);
      expect(m, log).not.toBeNull();
      return Number(m![1]);
    };

    // The reference: the same run, never interrupted.
    const refOut = path.join(dir, "reference");
    fs.writeFileSync(path.join(dir, "reference.json"), JSON.stringify(warmRun(refOut, 300)));
    const refLog: string[] = [];
    expect(
      await exitOf(run(["train", "-c", path.join(dir, "reference.json")]), refLog),
      refLog.join(""),
    ).toBe(0);

    // Killed as soon as the first warm-start checkpoints exist.
    const out = path.join(dir, "run");
    const configFile = path.join(dir, "config.json");
    fs.writeFileSync(configFile, JSON.stringify(warmRun(out, 300)));
    const latestName = () => {
      try {
        return fs.readFileSync(path.join(out, "checkpoints", "latest"), "utf8").trim();
      } catch {
        return "";
      }
    };
    const first = run(["train", "-c", configFile]);
    const firstLog: string[] = [];
    const firstExit = exitOf(first, firstLog);
    const deadline = Date.now() + 300_000;
    while (!/^warm-0000[2-9]0$/.test(latestName()) && first.exitCode === null && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 5));
    first.kill("SIGKILL");
    await firstExit;
    const killedAt = latestName();
    expect(killedAt, `the run was not killed during its warm start:\n${firstLog.join("")}`).toMatch(
      /^warm-\d+$/,
    );
    const killedStep = Number(killedAt.slice(5));
    expect(killedStep).toBeLessThan(300);

    const second = run(["train", "-c", configFile, "--resume"]);
    const secondLog: string[] = [];
    expect(await exitOf(second, secondLog), secondLog.join("")).toBe(0);
    const resumed = secondLog.join("");
    expect(resumed).toContain(`resumed the warm start from`);
    expect(resumed).toContain(`warm-start step ${killedStep}/300`);
    // Same batches and learning rate as the uninterrupted run: the same final demonstration loss.
    expect(finalNll(resumed)).toBeCloseTo(finalNll(refLog.join("")), 2);
    // Each logged warm-start step once, in order.
    const logged = fs
      .readFileSync(path.join(out, "warm-start.jsonl"), "utf8")
      .split("\n")
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l).step as number);
    expect(logged).toEqual(Array.from({ length: 12 }, (_, i) => 25 * (i + 1)));
    expect(fs.readFileSync(path.join(out, "checkpoints", "latest"), "utf8").trim()).toBe("step-000001");
  }, 600_000);
});
