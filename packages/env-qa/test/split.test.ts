import { existsSync } from "node:fs";
import path from "node:path";
import type { Task } from "@workflow-r1/core";
import { Effect } from "effect";
import { describe, expect, it } from "vitest";
import { loadBenchmarks, preferredBenchmarkFile, splitPart, tasksInPart } from "../src/datasets/index.js";

const DATA_DIR = path.resolve(import.meta.dirname, "../../../../shared/data/qa");
const hasData = existsSync(path.join(DATA_DIR, "manifest.json"));

const task = (dataset: string, id: string): Task => ({ id, question: "q", metadata: { dataset } });

describe("train / held-out split by a stable hash of the id", () => {
  it("assigns each question to one part, whatever the order, and honours the fraction", () => {
    const tasks = Array.from({ length: 2000 }, (_, i) => task("nq", `q${i}`));
    const train = tasksInPart(tasks, "train");
    const heldOut = tasksInPart(tasks, "held-out");
    expect(train.length + heldOut.length).toBe(tasks.length);
    const trainIds = new Set(train.map((t) => t.id));
    expect(heldOut.some((t) => trainIds.has(t.id))).toBe(false);
    // ~20% held out by default.
    expect(heldOut.length / tasks.length).toBeGreaterThan(0.17);
    expect(heldOut.length / tasks.length).toBeLessThan(0.23);
    // Order does not matter; the dataset is part of the key.
    expect(
      tasksInPart([...tasks].reverse(), "held-out")
        .map((t) => t.id)
        .sort(),
    ).toEqual(heldOut.map((t) => t.id).sort());
    expect(tasks.filter((t) => splitPart("nq", t.id) !== splitPart("hotpotqa", t.id)).length).toBeGreaterThan(
      100,
    );
    expect(tasksInPart(tasks, "held-out", 0)).toEqual([]);
    expect(tasksInPart(tasks, "train", 1)).toEqual([]);
  });

  it("prefers a complete file, then an alias-keeping sample, over primary-answer-only files", () => {
    const files = [
      { name: "musique/dev.primary_only", dataset: "musique" },
      { name: "musique/dev.sample500", dataset: "musique" },
      { name: "hotpotqa/dev.sample500", dataset: "hotpotqa" },
      { name: "hotpotqa/dev", dataset: "hotpotqa" },
    ];
    expect(preferredBenchmarkFile(files, "musique")?.name).toBe("musique/dev.sample500");
    expect(preferredBenchmarkFile(files, "hotpotqa")?.name).toBe("hotpotqa/dev");
    expect(preferredBenchmarkFile(files, "nq")).toBeUndefined();
  });

  it.skipIf(!hasData)(
    "splits the shared files into the documented sizes, consistently across a file and its sample",
    async () => {
      const loaded = await Effect.runPromise(
        loadBenchmarks(DATA_DIR, ["nq/test", "hotpotqa/dev", "hotpotqa/dev.sample500"]),
      );
      const byName = (name: string) => loaded.find((b) => b.name === name)!;
      const [nq, hotpot, sample] = [
        byName("nq/test"),
        byName("hotpotqa/dev"),
        byName("hotpotqa/dev.sample500"),
      ];
      const sizes = (tasks: ReadonlyArray<Task>) => [
        tasksInPart(tasks, "train").length,
        tasksInPart(tasks, "held-out").length,
      ];
      // The sizes documented in the env-qa README.
      expect(sizes(nq!.tasks)).toEqual([2883, 727]);
      expect(sizes(hotpot!.tasks)).toEqual([5919, 1486]);
      // dev.sample500 ⊂ dev: each sampled question is in the same part in both files.
      const devHeldOut = new Set(tasksInPart(hotpot!.tasks, "held-out").map((t) => t.id));
      for (const t of sample!.tasks)
        expect(devHeldOut.has(t.id)).toBe(splitPart("hotpotqa", t.id) === "held-out");
    },
  );
});
