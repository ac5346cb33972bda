import { describe, expect, it } from "vitest";
import { selectBenchmarks } from "../src/index.js";

const file = (name: string) => ({ name, dataset: name.split("/")[0]!, file: `/data/${name}.jsonl` });
const files = [
  "2wikimultihopqa/dev.primary_only",
  "2wikimultihopqa/dev.sample500",
  "bamboogle/test",
  "hotpotqa/dev",
  "hotpotqa/dev.sample500",
  "musique/dev.primary_only",
  "musique/dev.sample500",
  "nq/test",
  "popqa/test.sample500",
  "triviaqa/test.sample",
].map(file);

describe("selectBenchmarks", () => {
  it.each([
    ["hotpotqa", "hotpotqa/dev"],
    ["musique", "musique/dev.sample500"],
    ["2wikimultihopqa", "2wikimultihopqa/dev.sample500"],
    ["musique/dev.primary_only", "musique/dev.primary_only"],
    ["bamboogle", "bamboogle/test"],
    ["popqa", "popqa/test.sample500"],
  ])("%s → %s", (name, expected) => {
    const { selected, unknown } = selectBenchmarks(files, [name]);
    expect(unknown).toEqual([]);
    expect(selected.map((s) => [s.label, s.file.name])).toEqual([[name, expected]]);
  });

  it("takes one file per dataset in the paper's order by default", () => {
    const { selected } = selectBenchmarks(files);
    expect(selected.map((s) => s.label)).toEqual([
      "nq",
      "triviaqa",
      "popqa",
      "hotpotqa",
      "2wikimultihopqa",
      "musique",
      "bamboogle",
    ]);
  });

  it("reports unknown names", () => {
    expect(selectBenchmarks(files, ["bamboogle", "squad"]).unknown).toEqual(["squad"]);
  });
});
