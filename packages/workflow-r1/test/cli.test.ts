import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { TrajectoryBuilder } from "@workflow-r1/core";
import { TrajectoryLogWriter } from "@workflow-r1/rollout";
import { describe, expect, it } from "vitest";
import { defaultTrainConfig } from "../src/config.js";

const cli = path.resolve(import.meta.dirname, "../dist/cli.js");
const run = (...args: string[]) =>
  spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", env: { ...process.env, CI: "1" } });

describe("workflow-r1 command", () => {
  it("lists its commands", () => {
    const r = run("--help");
    expect(r.status).toBe(0);
    for (const command of ["train", "compare", "eval", "trajectories"]) expect(r.stdout).toContain(command);
  });

  it("is installed as the workspace's `workflow-r1` command (what the README's quick start runs)", () => {
    // npm links commands at install time, before dist/ is built: the link must target a committed file.
    const root = path.resolve(import.meta.dirname, "../../..");
    const command = path.join(root, "node_modules", ".bin", "workflow-r1");
    expect(fs.existsSync(command), `${command} (run npm install)`).toBe(true);
    const r = spawnSync(command, ["--help"], { encoding: "utf8", env: { ...process.env, CI: "1" } });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("train");
  });

  it("exits 1 with the offending field on a bad config", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-cli-"));
    const file = path.join(dir, "bad.yaml");
    fs.writeFileSync(file, "rollout:\n  groupSize: -2\n");
    const r = run("train", "-c", file, "--out", path.join(dir, "run"));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("ConfigError");
    expect(r.stderr).toContain("groupSize");
    // One line: the Schema's report is joined, the field path beside its message.
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(
      /^workflow-r1: ConfigError: invalid training config in .*bad\.yaml: .* at \["rollout"\]\["groupSize"\]$/m,
    );
  });

  it("refuses --resume without a run directory, and unknown environments", () => {
    expect(run("train", "--resume").stderr).toContain("--resume needs --out");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-cli-"));
    const r = run("train", "--env", "nonexistent-env", "--out", path.join(dir, "run"));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("@workflow-r1/env-nonexistent-env");
    // Nothing is written for a config that is refused.
    expect(fs.existsSync(path.join(dir, "run", "config.json"))).toBe(false);
  });

  it("a failed --resume with a bad override leaves the run's config.json as it was", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-cli-"));
    const out = path.join(dir, "run");
    fs.mkdirSync(out);
    const stored = `${JSON.stringify({ ...defaultTrainConfig, out, steps: 3 }, null, 2)}\n`;
    fs.writeFileSync(path.join(out, "config.json"), stored);
    const r = run("train", "--resume", "--out", out, "--env", "nonexistent-env");
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("@workflow-r1/env-nonexistent-env");
    expect(fs.readFileSync(path.join(out, "config.json"), "utf8")).toBe(stored);
  });

  it("prints episodes of a trajectory log", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-cli-"));
    const file = path.join(dir, "trajectories.msgpack");
    const writer = await TrajectoryLogWriter.open(file);
    for (let i = 0; i < 2; i++) {
      const b = new TrajectoryBuilder([1, 2, 3]);
      b.appendSampled([4, 5], [-0.1, -0.2]);
      await writer.append(
        b.build({
          reward: i,
          rewardParts: { em: i },
          groupId: "g",
          taskId: `task-${i}`,
          turns: [
            {
              action: `<think>t${i}</think><answer>a${i}</answer>`,
              operatorCalls: [],
              sampledTokens: 2,
              sampleMs: 1,
              envMs: 0,
            },
          ],
          finishReason: "answer",
        }),
      );
    }
    await writer.close();
    const r = run("trajectories", file, "--episodes", "1,7");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("2 episodes");
    expect(r.stdout).toContain("task-1");
    expect(r.stdout).toContain("<answer>a1</answer>");
    expect(r.stdout).toContain("episode 7: not in the log");

    // 4 bytes overwritten inside the first record: the second still shows, with a warning.
    const bytes = fs.readFileSync(file);
    bytes.writeUInt32LE(0xdeadbeef, 8 + 8 + 6);
    fs.writeFileSync(file, bytes);
    const damaged = run("trajectories", file, "--episodes", "0");
    expect(damaged.status).toBe(0);
    expect(damaged.stdout).toContain("1 episodes");
    expect(damaged.stdout).toContain("task-1");
    expect(damaged.stderr).toMatch(
      /warning: .*skipped 1 corrupt region\(s\), \d+ bytes \(\d+ bytes at byte 8\); 1 intact records read/,
    );
  });
});

describe("algorithm resolution", () => {
  it("names the package it tried for an unknown algorithm", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-cli-"));
    const r = run("train", "--algorithm", "nosuchalgo", "--out", path.join(dir, "run"));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("@workflow-r1/algo-nosuchalgo");
  });
});
