// `workflow-r1 trajectories` on a damaged log: a warning on stderr, the intact episodes on stdout.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { TrajectoryBuilder } from "@workflow-r1/core";
import { TrajectoryLogWriter } from "@workflow-r1/rollout";
import { afterAll, describe, expect, it } from "vitest";

const cli = path.resolve(import.meta.dirname, "../dist/cli.js");
const run = (...args: string[]) =>
  spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", env: { ...process.env, CI: "1" } });

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-trajectories-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const writeLog = async (file: string, n: number) => {
  const writer = await TrajectoryLogWriter.open(file);
  for (let i = 0; i < n; i++) {
    const b = new TrajectoryBuilder([1, 2, 3]);
    b.appendSampled([4, 5, 6 + i], [-0.1, -0.2, -0.3]);
    await writer.append(
      b.build({
        reward: i % 2,
        rewardParts: { em: i % 2 },
        groupId: `g${i >> 2}`,
        taskId: `task-${i}`,
        turns: [
          {
            action: `<answer>a${i}</answer>`,
            operatorCalls: [],
            sampledTokens: 3,
            sampleMs: 1,
            envMs: 0,
          },
        ],
        finishReason: "answer",
      }),
    );
  }
  await writer.close();
};

/** Offset of each record: after the 8-byte header, `[u32 length][u32 crc][payload]`. */
const recordStarts = (bytes: Buffer) => {
  const starts: number[] = [];
  for (let offset = 8; offset < bytes.length; offset += 8 + bytes.readUInt32LE(offset)) starts.push(offset);
  return starts;
};

describe("workflow-r1 trajectories", () => {
  it("warns about corrupt regions in the middle of a log and still shows the episodes after them", async () => {
    const file = path.join(dir, "damaged.wr1log");
    await writeLog(file, 60);
    const bytes = fs.readFileSync(file);
    const starts = recordStarts(bytes);
    // 4 bytes overwritten in record 30, and record 41's length claims more than the file holds.
    bytes.writeUInt32LE(0xdeadbeef, starts[30]! + 8 + 10);
    bytes.writeUInt32LE(0x7fffffff, starts[41]!);
    fs.writeFileSync(file, bytes);
    const r = run("trajectories", file, "--episodes", "0,29,30,57");
    expect(r.status, r.stderr).toBe(0);
    const first = starts[31]! - starts[30]!;
    const second = starts[42]! - starts[41]!;
    expect(r.stderr).toContain(
      `warning: ${file}: skipped 2 corrupt region(s), ${first + second} bytes ` +
        `(${first} bytes at byte ${starts[30]}, ${second} bytes at byte ${starts[41]}); 58 intact records read`,
    );
    expect(r.stdout).toContain(`${file}: 58 episodes\n`);
    expect(r.stdout).not.toContain("torn tail");
    // Episodes are numbered among the intact records: 29 is task-29, 30 is task-31, 57 is task-59.
    expect(r.stdout).toContain("<answer>a29</answer>");
    expect(r.stdout).not.toContain("<answer>a30</answer>");
    expect(r.stdout).toContain("<answer>a31</answer>");
    expect(r.stdout).toContain("<answer>a59</answer>");
    expect(r.stdout).not.toContain("not in the log");
  });

  it("prints no warning for an intact log, and a torn tail is not corruption", async () => {
    const file = path.join(dir, "torn.wr1log");
    await writeLog(file, 5);
    const size = fs.statSync(file).size;
    fs.truncateSync(file, size - 7);
    const r = run("trajectories", file, "--episodes", "3");
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).not.toContain("warning");
    expect(r.stdout).toMatch(/: 4 episodes \(\d+ bytes of torn tail ignored\)/);
    expect(r.stdout).toContain("<answer>a3</answer>");
  });
});
