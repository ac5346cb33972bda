import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { crc32 } from "node:zlib";
import { type Trajectory, TrajectoryBuilder, validateTrajectory } from "@workflow-r1/core";
import { Effect } from "effect";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  appendTrajectory,
  formatTrajectory,
  readTrajectoryLog,
  readTrajectoryLogAll,
  TrajectoryLogWriter,
  trajectoryLogWriter,
} from "../src/index.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "rollout-log-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const make = (i: number, sampled = 5): Trajectory => {
  const b = new TrajectoryBuilder([1, 2, 3, i]);
  b.appendSampled(
    Array.from({ length: sampled }, (_, k) => 10 + k + i),
    Array.from({ length: sampled }, (_, k) => -0.5 - k / 10),
  );
  b.appendObservation([7, 8]);
  b.appendSampled([42], [-1.25]);
  return b.build({
    reward: i / 2,
    rewardParts: { em: i % 2, format: 1 },
    groupId: `g${i >> 1}`,
    taskId: `t${i}`,
    turns: [
      {
        action: `<tool>q${i}</tool>`,
        observation: `obs ${i}`,
        operatorCalls: [{ operator: "search", input: `q${i}`, output: "passage", latencyMs: 12.5 }],
        sampledTokens: sampled,
        sampleMs: 3,
        envMs: 12.5,
      },
      {
        action: "<answer>x</answer>",
        operatorCalls: [{ operator: "verify", input: "x", output: "", latencyMs: 1, error: "timeout" }],
        sampledTokens: 1,
        sampleMs: 1,
        envMs: 0,
      },
    ],
    finishReason: i % 3 === 0 ? "answer" : "max-turns",
  });
};

const writeLog = async (file: string, trajectories: Trajectory[]) => {
  const writer = await TrajectoryLogWriter.open(file);
  await Promise.all(trajectories.map((t) => writer.append(t)));
  await writer.close();
};

describe("trajectory log", () => {
  it("round-trips trajectories exactly (typed arrays, NaN logprobs, turns)", async () => {
    const file = join(dir, "roundtrip.wr1log");
    const written = Array.from({ length: 20 }, (_, i) => make(i, 1 + i));
    await writeLog(file, written);
    const reader = readTrajectoryLog(file);
    const read: Trajectory[] = [];
    for await (const t of reader) read.push(t);
    expect(reader.records).toBe(20);
    expect(reader.ignoredBytes).toBe(0);
    expect(read).toHaveLength(20);
    for (const [i, t] of read.entries()) {
      validateTrajectory(t);
      expect(t.tokens).toBeInstanceOf(Int32Array);
      expect(t.samplerLogprobs).toBeInstanceOf(Float32Array);
      expect(Array.from(t.tokens)).toEqual(Array.from(written[i]!.tokens));
      expect(Array.from(t.samplerLogprobs).map(String)).toEqual(
        Array.from(written[i]!.samplerLogprobs).map(String),
      );
      expect(t.turns).toEqual(written[i]!.turns);
      expect(t.rewardParts).toEqual(written[i]!.rewardParts);
    }
  });

  it("a log cut at any byte yields exactly its whole records and counts the ignored tail", async () => {
    const file = join(dir, "whole.wr1log");
    const written = Array.from({ length: 4 }, (_, i) => make(i));
    await writeLog(file, written);
    const bytes = await readFile(file);
    // Record boundaries: read back with growing prefixes and note where the count changes.
    const cut = join(dir, "cut.wr1log");
    const ends: number[] = [];
    {
      let offset = 8;
      while (offset < bytes.length) {
        offset += 8 + bytes.readUInt32LE(offset);
        ends.push(offset);
      }
    }
    expect(ends).toHaveLength(4);
    expect(ends.at(-1)).toBe(bytes.length);
    for (let n = 0; n <= bytes.length; n++) {
      await writeFile(cut, bytes.subarray(0, n));
      const { trajectories, ignoredBytes } = await readTrajectoryLogAll(cut);
      const whole = ends.filter((e) => e <= n).length;
      expect(trajectories.length, `cut at ${n}`).toBe(whole);
      const end = whole === 0 ? Math.min(n, 8) : ends[whole - 1]!;
      expect(ignoredBytes, `cut at ${n}`).toBe(n < 8 ? n : n - end);
      for (const [i, t] of trajectories.entries()) expect(t.taskId).toBe(`t${i}`);
    }
  });

  it("reopening a torn log truncates the tail and appends after the last whole record", async () => {
    const file = join(dir, "reopen.wr1log");
    await writeLog(file, [make(0), make(1)]);
    const size = (await stat(file)).size;
    await truncate(file, size - 3);
    const writer = await TrajectoryLogWriter.open(file);
    expect(writer.existingRecords).toBe(1);
    expect(writer.truncatedBytes).toBeGreaterThan(0);
    await writer.append(make(2));
    await writer.close();
    const { trajectories, ignoredBytes } = await readTrajectoryLogAll(file);
    expect(trajectories.map((t) => t.taskId)).toEqual(["t0", "t2"]);
    expect(ignoredBytes).toBe(0);
  });

  it("rejects files that are not logs, naming file and offset", async () => {
    const other = join(dir, "other.bin");
    await writeFile(other, "hello world, not a log");
    await expect(readTrajectoryLogAll(other)).rejects.toMatchObject({
      _tag: "TrajectoryLogError",
      offset: 0,
    });
    await expect(readTrajectoryLogAll(join(dir, "missing.wr1log"))).rejects.toMatchObject({
      _tag: "TrajectoryLogError",
    });
  });

  /** Offsets of the records of a log written by {@link writeLog}. */
  const recordStarts = (bytes: Buffer) => {
    const starts: number[] = [];
    for (let offset = 8; offset < bytes.length; offset += 8 + bytes.readUInt32LE(offset)) starts.push(offset);
    return starts;
  };

  it("skips a record corrupted mid-file and reads every other one, reporting the region", async () => {
    const file = join(dir, "corrupt-middle.wr1log");
    await writeLog(
      file,
      Array.from({ length: 50 }, (_, i) => make(i)),
    );
    const bytes = await readFile(file);
    const starts = recordStarts(bytes);
    // 4 bytes overwritten inside record 20's payload.
    bytes.writeUInt32LE(0xdeadbeef, starts[20]! + 8 + 5);
    await writeFile(file, bytes);
    const { trajectories, ignoredBytes, corruptRegions, corruptBytes } = await readTrajectoryLogAll(file);
    expect(trajectories.map((t) => t.taskId)).toEqual(
      Array.from({ length: 50 }, (_, i) => `t${i}`).filter((id) => id !== "t20"),
    );
    expect(corruptRegions).toEqual([{ offset: starts[20], bytes: starts[21]! - starts[20]! }]);
    expect(corruptBytes).toBe(starts[21]! - starts[20]!);
    expect(ignoredBytes).toBe(0);
    const reader = readTrajectoryLog(file);
    for await (const _ of reader);
    expect(reader.records).toBe(49);
    expect(reader.corruptRegions).toHaveLength(1);
    expect(reader.ignoredBytes).toBe(0);
  });

  it("does not let a chance match in the garbage swallow the real record behind it", async () => {
    const file = join(dir, "corrupt-fake.wr1log");
    await writeLog(
      file,
      Array.from({ length: 12 }, (_, i) => make(i)),
    );
    const bytes = await readFile(file);
    const starts = recordStarts(bytes);
    // Inside record 5, a header whose length and CRC-32 fit: a "record" running 20 bytes into
    // record 6. Taken at face value it would hide record 6 (the bytes after it are no record).
    const fake = starts[5]! + 8 + 4;
    const fakeEnd = starts[6]! + 20;
    bytes.writeUInt32LE(fakeEnd - fake - 8, fake);
    bytes[fake + 8] = 0x8b; // starts like a trajectory (a msgpack map)
    bytes.writeUInt32LE(crc32(bytes.subarray(fake + 8, fakeEnd)), fake + 4);
    await writeFile(file, bytes);
    const { trajectories, corruptRegions, ignoredBytes } = await readTrajectoryLogAll(file);
    expect(trajectories.map((t) => t.taskId)).toEqual(
      Array.from({ length: 12 }, (_, i) => `t${i}`).filter((id) => id !== "t5"),
    );
    expect(corruptRegions).toEqual([{ offset: starts[5], bytes: starts[6]! - starts[5]! }]);
    expect(ignoredBytes).toBe(0);
  });

  it("keeps a valid record between two corrupt ones, and a last record before a torn tail", async () => {
    const file = join(dir, "corrupt-between.wr1log");
    await writeLog(
      file,
      Array.from({ length: 10 }, (_, i) => make(i)),
    );
    const full = await readFile(file);
    const starts = recordStarts(full);
    full[starts[3]! + 30]! ^= 0x5a;
    full[starts[5]! + 30]! ^= 0x5a;
    // Record 8 corrupt, record 9 whole, then a torn record.
    full[starts[8]! + 30]! ^= 0x5a;
    const torn = Buffer.concat([full, full.subarray(starts[1]!, starts[1]! + 40)]);
    await writeFile(file, torn);
    const { trajectories, corruptRegions, ignoredBytes } = await readTrajectoryLogAll(file);
    expect(trajectories.map((t) => t.taskId)).toEqual(["t0", "t1", "t2", "t4", "t6", "t7", "t9"]);
    expect(corruptRegions.map((r) => r.offset)).toEqual([starts[3], starts[5], starts[8]]);
    expect(ignoredBytes).toBe(40);
  });

  it("counts a checksummed record that is not a trajectory, next to a corrupt one, in one region", async () => {
    const file = join(dir, "corrupt-adjacent.wr1log");
    await writeLog(
      file,
      Array.from({ length: 10 }, (_, i) => make(i)),
    );
    const bytes = await readFile(file);
    const starts = recordStarts(bytes);
    bytes[starts[5]! + 20]! ^= 0xff; // record 5: checksum fails
    // Record 6: a valid frame around bytes that do not decode as a trajectory.
    bytes.fill(0xc1, starts[6]! + 8, starts[7]!); // 0xc1 is never valid msgpack…
    bytes[starts[6]! + 8] = 0x81; // …behind a map header, so only decoding finds out
    bytes.writeUInt32LE(crc32(bytes.subarray(starts[6]! + 8, starts[7]!)), starts[6]! + 4);
    await writeFile(file, bytes);
    const { trajectories, corruptRegions, corruptBytes } = await readTrajectoryLogAll(file);
    expect(trajectories.map((t) => t.taskId)).toEqual(["t0", "t1", "t2", "t3", "t4", "t7", "t8", "t9"]);
    expect(corruptRegions).toEqual([{ offset: starts[5], bytes: starts[7]! - starts[5]! }]);
    expect(corruptBytes).toBe(starts[7]! - starts[5]!);
  });

  it("resynchronises after a length field corrupted to a huge value, and after two regions", async () => {
    const file = join(dir, "corrupt-length.wr1log");
    await writeLog(
      file,
      Array.from({ length: 30 }, (_, i) => make(i)),
    );
    const bytes = await readFile(file);
    const starts = recordStarts(bytes);
    bytes.writeUInt32LE(0x7fffffff, starts[3]!); // claims more than the file holds
    bytes.writeUInt32LE(0x12345678, starts[17]! + 4); // a wrong checksum
    await writeFile(file, bytes);
    const reader = readTrajectoryLog(file);
    const ids: string[] = [];
    for await (const t of reader) ids.push(t.taskId);
    expect(ids).toHaveLength(28);
    expect(ids).not.toContain("t3");
    expect(ids).not.toContain("t17");
    expect(reader.corruptRegions.map((r) => r.offset)).toEqual([starts[3], starts[17]]);
    expect(reader.corruptBytes).toBe(starts[4]! - starts[3]! + (starts[18]! - starts[17]!));
  });

  it("appends after mid-file corruption without losing the records behind it", async () => {
    const file = join(dir, "corrupt-append.wr1log");
    await writeLog(
      file,
      Array.from({ length: 10 }, (_, i) => make(i)),
    );
    const bytes = await readFile(file);
    bytes[recordStarts(bytes)[4]! + 12] ^= 0xff;
    await writeFile(file, bytes);
    const writer = await TrajectoryLogWriter.open(file);
    expect(writer.existingRecords).toBe(9);
    expect(writer.truncatedBytes).toBe(0);
    await writer.append(make(10));
    await writer.close();
    const { trajectories, corruptRegions } = await readTrajectoryLogAll(file);
    expect(trajectories.map((t) => t.taskId)).toEqual([
      "t0",
      "t1",
      "t2",
      "t3",
      "t5",
      "t6",
      "t7",
      "t8",
      "t9",
      "t10",
    ]);
    expect(corruptRegions).toHaveLength(1);
  });

  it("keepRecords cuts a log back to a checkpoint's position and appends after it", async () => {
    const file = join(dir, "keep.wr1log");
    await writeLog(
      file,
      Array.from({ length: 12 }, (_, i) => make(i)),
    );
    const writer = await TrajectoryLogWriter.open(file, { keepRecords: 5 });
    expect(writer.existingRecords).toBe(5);
    expect(writer.truncatedRecords).toBe(7);
    await writer.append(make(40));
    await writer.close();
    const { trajectories } = await readTrajectoryLogAll(file);
    expect(trajectories.map((t) => t.taskId)).toEqual(["t0", "t1", "t2", "t3", "t4", "t40"]);
    // Keeping all of them cuts nothing; keeping more than the log holds is refused.
    const all = await TrajectoryLogWriter.open(file, { keepRecords: 6 });
    expect(all.truncatedRecords).toBe(0);
    await all.close();
    await expect(TrajectoryLogWriter.open(file, { keepRecords: 7 })).rejects.toMatchObject({
      _tag: "TrajectoryLogError",
      message: expect.stringMatching(/cannot keep 7 records .*: it holds 6/),
    });
    const empty = await TrajectoryLogWriter.open(file, { keepRecords: 0 });
    expect(empty.truncatedRecords).toBe(6);
    await empty.close();
    expect((await readTrajectoryLogAll(file)).trajectories).toEqual([]);
    expect((await stat(file)).size).toBe(8);
  });

  it("keepRecords counts records past mid-file corruption and cuts a torn tail with them", async () => {
    const file = join(dir, "keep-corrupt.wr1log");
    await writeLog(
      file,
      Array.from({ length: 10 }, (_, i) => make(i)),
    );
    const bytes = await readFile(file);
    const starts = recordStarts(bytes);
    bytes[starts[2]! + 16]! ^= 0xff;
    await writeFile(file, Buffer.concat([bytes, bytes.subarray(starts[0]!, starts[0]! + 11)]));
    // 9 whole records (t0, t1, t3…t9): keeping 6 ends after t6, keeping 10 is refused.
    await expect(TrajectoryLogWriter.open(file, { keepRecords: 10 })).rejects.toMatchObject({
      _tag: "TrajectoryLogError",
      message: expect.stringMatching(/it holds 9/),
    });
    const writer = await TrajectoryLogWriter.open(file, { keepRecords: 6 });
    expect(writer.existingRecords).toBe(6);
    expect(writer.truncatedRecords).toBe(3);
    expect(writer.truncatedBytes).toBe(bytes.length + 11 - starts[7]!);
    await writer.append(make(20));
    await writer.close();
    const { trajectories, corruptRegions, ignoredBytes } = await readTrajectoryLogAll(file);
    expect(trajectories.map((t) => t.taskId)).toEqual(["t0", "t1", "t3", "t4", "t5", "t6", "t20"]);
    expect(corruptRegions).toEqual([{ offset: starts[2], bytes: starts[3]! - starts[2]! }]);
    expect(ignoredBytes).toBe(0);
  });

  it("scoped writer: a checkpoint's position (existingRecords + records) cuts a resumed run back", async () => {
    const file = join(dir, "keep-scoped.wr1log");
    // First attempt: 4 episodes, checkpoint, 3 more, killed.
    const checkpoint = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const writer = yield* trajectoryLogWriter(file);
          for (let i = 0; i < 4; i++) yield* appendTrajectory(writer, make(i));
          const position = writer.existingRecords + writer.records;
          for (let i = 4; i < 7; i++) yield* appendTrajectory(writer, make(i));
          return position;
        }),
      ),
    );
    expect(checkpoint).toBe(4);
    // Resumed run: back to the checkpoint, then its own episodes.
    const [truncatedRecords, position] = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const writer = yield* trajectoryLogWriter(file, { keepRecords: checkpoint });
          expect(writer.existingRecords).toBe(4);
          for (let i = 100; i < 102; i++) yield* appendTrajectory(writer, make(i));
          return [writer.truncatedRecords, writer.existingRecords + writer.records] as const;
        }),
      ),
    );
    expect(truncatedRecords).toBe(3);
    expect(position).toBe(6);
    const { trajectories } = await readTrajectoryLogAll(file);
    expect(trajectories.map((t) => t.taskId)).toEqual(["t0", "t1", "t2", "t3", "t100", "t101"]);
    const refused = await Effect.runPromiseExit(Effect.scoped(trajectoryLogWriter(file, { keepRecords: 7 })));
    expect(refused._tag).toBe("Failure");
    expect(String(refused)).toMatch(/cannot keep 7 records .*it holds 6/);
  });

  it("property: any interleaving of appends reads back in order", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 0, maxLength: 12 }),
        async (sizes) => {
          const file = join(dir, `prop-${Math.random().toString(36).slice(2)}.wr1log`);
          await writeLog(
            file,
            sizes.map((s, i) => make(i, s + 1)),
          );
          const { trajectories } = await readTrajectoryLogAll(file);
          expect(trajectories.map((t) => t.turns[0]!.sampledTokens)).toEqual(sizes.map((s) => s + 1));
          await rm(file);
        },
      ),
      { numRuns: 30 },
    );
  });

  it("survives SIGKILL of the writing process: every complete record reads back", async () => {
    const file = join(dir, "crash.wr1log");
    const here = fileURLToPath(new URL(".", import.meta.url));
    const child = spawn(
      process.execPath,
      [
        "--conditions=development",
        "--import",
        join(here, "fixtures/ts-hooks.mjs"),
        join(here, "fixtures/log-writer-child.ts"),
        file,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (d) => {
      stderr += String(d);
    });
    // Kill it once it has reported a few hundred records, mid-write with high probability.
    let reported = 0;
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (d: Buffer) => {
        for (const line of String(d).trim().split("\n")) reported = Math.max(reported, Number(line));
        if (reported >= 301) {
          child.kill("SIGKILL");
          resolve();
        }
      });
      child.on("exit", (code) =>
        code === null ? resolve() : reject(new Error(`child exited ${code}: ${stderr}`)),
      );
    });
    await new Promise((r) => child.once("close", r));
    expect(child.signalCode).toBe("SIGKILL");
    const reader = readTrajectoryLog(file);
    let n = 0;
    for await (const t of reader) {
      validateTrajectory(t);
      expect(t.taskId).toBe(`t${n}`);
      expect(t.reward).toBe(n);
      n++;
    }
    // At least every record the child reported as written is there.
    expect(n).toBeGreaterThanOrEqual(reported);
    const size = (await stat(file)).size;
    expect(reader.ignoredBytes).toBeLessThan(size);
  });
});

describe("formatTrajectory", () => {
  it("shows header, reward parts, turns, operator calls with errors and observations", () => {
    const t = { ...make(3), error: "PolicyError: boom" };
    const text = formatTrajectory(t, { decode: (tokens) => Array.from(tokens).join(",") });
    expect(text).toContain("task t3  group g1  finish answer");
    expect(text).toContain("reward 1.5  (em=1 format=1)");
    expect(text).toContain("error: PolicyError: boom");
    expect(text).toContain("prompt:\n    1,2,3,3");
    expect(text).toContain('search("q3") 12.5 ms');
    expect(text).toContain("    = passage");
    expect(text).toContain("error: timeout");
    expect(text).toContain("observation:\n    obs 3");
    expect(text.indexOf("turn 1:")).toBeLessThan(text.indexOf("turn 2:"));
  });
});
