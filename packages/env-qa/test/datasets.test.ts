import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { DatasetError } from "@workflow-r1/core";
import { Effect, Exit, Stream } from "effect";
import fc from "fast-check";
import { ByteWriter, parquetWrite } from "hyparquet-writer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  listBenchmarks,
  loadBenchmarks,
  loadFlashRagJsonl,
  loadSearchR1Parquet,
  searchR1Question,
  streamJsonl,
} from "../src/datasets/index.js";

const DATA_DIR = path.resolve(import.meta.dirname, "../../../../shared/data/qa");
const hasData = existsSync(path.join(DATA_DIR, "manifest.json"));
if (!hasData) console.warn(`datasets tests: ${DATA_DIR} not found; skipping the tests on the real QA files`);

let tmp = "";
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), "env-qa-datasets-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const failureOf = (exit: Exit.Exit<unknown, unknown>): unknown => {
  if (Exit.isSuccess(exit)) return undefined;
  const reason = exit.cause.reasons[0];
  return reason !== undefined && "error" in reason ? reason.error : reason;
};

describe.skipIf(!hasData)("the QA files in /work/shared/data/qa", () => {
  const manifest = hasData
    ? (JSON.parse(readFileSync(path.join(DATA_DIR, "manifest.json"), "utf8")) as {
        path: string;
        rows: number;
      }[])
    : [];

  it("lists every manifest file", async () => {
    const files = await Effect.runPromise(listBenchmarks(DATA_DIR));
    expect(files.map((f) => f.name).sort()).toEqual(
      manifest.map((m) => m.path.replace(/\.jsonl$/, "")).sort(),
    );
  });

  it.each(manifest.map((m) => [m.path, m.rows] as const))("%s loads with %i rows", async (file, rows) => {
    const tasks = await Effect.runPromise(loadFlashRagJsonl(path.join(DATA_DIR, file)));
    expect(tasks).toHaveLength(rows);
    const [dataset, base] = file.split("/");
    for (const task of tasks) {
      expect(typeof task.id).toBe("string");
      expect(task.question.length).toBeGreaterThan(0);
      expect(task.goldenAnswers?.length).toBeGreaterThan(0);
      expect(task.metadata).toEqual({ dataset, split: base?.split(".")[0] });
    }
  });

  it("loads the first Bamboogle record exactly, and applies Search-R1's preprocessing on request", async () => {
    const file = path.join(DATA_DIR, "bamboogle/test.jsonl");
    const firstLine = JSON.parse(readFileSync(file, "utf8").split("\n")[0] ?? "{}");
    const [task] = await Effect.runPromise(loadFlashRagJsonl(file, { limit: 1 }));
    expect(task).toEqual({
      id: firstLine.id,
      question: firstLine.question,
      goldenAnswers: firstLine.golden_answers,
      metadata: { dataset: "bamboogle", split: "test" },
    });
    const all = await Effect.runPromise(loadFlashRagJsonl(file, { searchR1Question: true }));
    expect(all.every((t) => t.question.endsWith("?") && t.question === t.question.trim())).toBe(true);
  });

  it("loadBenchmarks selects by dataset (its one preferred file) or full name, checks row counts and rejects unknown names", async () => {
    // `hotpotqa` is its complete dev file only: dev.sample500 is a subset of it and would load 500
    // questions twice.
    const picked = await Effect.runPromise(loadBenchmarks(DATA_DIR, ["hotpotqa", "bamboogle/test"]));
    expect(picked.map((b) => [b.name, b.tasks.length])).toEqual([
      ["bamboogle/test", 125],
      ["hotpotqa/dev", 7405],
    ]);
    // A sample that keeps aliases is preferred to a complete file with primary answers only.
    const musique = await Effect.runPromise(loadBenchmarks(DATA_DIR, ["musique", "hotpotqa/dev.sample500"]));
    expect(musique.map((b) => b.name)).toEqual(["hotpotqa/dev.sample500", "musique/dev.sample500"]);
    const unknown = failureOf(await Effect.runPromiseExit(loadBenchmarks(DATA_DIR, ["squad"])));
    expect(unknown).toBeInstanceOf(DatasetError);
    expect((unknown as DatasetError).message).toContain("unknown benchmark squad");
  });
});

describe("broken jsonl files", () => {
  const good = (i: number) => JSON.stringify({ id: `t${i}`, question: `q${i}`, golden_answers: [`a${i}`] });

  it("bad JSON on line 3 names the file and line", async () => {
    const file = path.join(tmp, "bad-json.jsonl");
    await writeFile(file, `${good(1)}\n${good(2)}\n{"id": "t3", "question": \n${good(4)}\n`);
    const error = failureOf(await Effect.runPromiseExit(loadFlashRagJsonl(file)));
    expect(error).toBeInstanceOf(DatasetError);
    expect(error).toMatchObject({ file, line: 3 });
    expect((error as DatasetError).message).toContain(`${file}:3`);
  });

  it("a missing field names file, line and field", async () => {
    const file = path.join(tmp, "missing.jsonl");
    await writeFile(file, `${good(1)}\n${JSON.stringify({ id: "t2", question: "q2" })}\n`);
    const error = failureOf(await Effect.runPromiseExit(loadFlashRagJsonl(file)));
    expect(error).toMatchObject({ _tag: "DatasetError", file, line: 2, field: "golden_answers" });
    expect((error as DatasetError).message).toContain("Missing key");
  });

  it("a wrong type names the nested field", async () => {
    const file = path.join(tmp, "wrong-type.jsonl");
    await writeFile(
      file,
      `${good(1)}\n\n${JSON.stringify({ id: "t3", question: "q3", golden_answers: ["a", 7] })}\n`,
    );
    const error = failureOf(await Effect.runPromiseExit(loadFlashRagJsonl(file)));
    expect(error).toMatchObject({ _tag: "DatasetError", file, line: 3, field: "golden_answers[1]" });
    expect((error as DatasetError).message).toContain("Expected string");

    const q = path.join(tmp, "wrong-question.jsonl");
    await writeFile(q, `${JSON.stringify({ id: 1, question: ["q"], golden_answers: [] })}\n`);
    expect(failureOf(await Effect.runPromiseExit(loadFlashRagJsonl(q)))).toMatchObject({
      line: 1,
      field: "question",
    });
  });

  it("a missing file is a DatasetError naming it", async () => {
    const file = path.join(tmp, "absent.jsonl");
    const error = failureOf(await Effect.runPromiseExit(loadFlashRagJsonl(file)));
    expect(error).toMatchObject({ _tag: "DatasetError", file });
  });
});

describe("streamJsonl", () => {
  it("streams records with line numbers, skipping blank lines, and stops early on take", async () => {
    const file = path.join(tmp, "stream.jsonl");
    const lines = Array.from({ length: 20_000 }, (_, i) => JSON.stringify({ i }));
    await writeFile(file, `${lines.slice(0, 2).join("\n")}\n\n${lines.slice(2).join("\n")}\n`);
    const firstFour = await Effect.runPromise(Stream.runCollect(Stream.take(streamJsonl(file), 4)));
    expect(firstFour).toEqual([
      { line: 1, value: { i: 0 } },
      { line: 2, value: { i: 1 } },
      { line: 4, value: { i: 2 } },
      { line: 5, value: { i: 3 } },
    ]);
    const count = await Effect.runPromise(Stream.runCount(streamJsonl(file)));
    expect(count).toBe(20_000);
  });
});

describe("Search-R1 parquet", () => {
  const stringList = (name: string) => [
    { name, repetition_type: "OPTIONAL" as const, converted_type: "LIST" as const, num_children: 1 },
    { name: "list", repetition_type: "REPEATED" as const, num_children: 1 },
    {
      name: "element",
      type: "BYTE_ARRAY" as const,
      converted_type: "UTF8" as const,
      repetition_type: "REQUIRED" as const,
    },
  ];
  const str = (name: string) =>
    ({ name, type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "OPTIONAL" }) as const;

  const writeParquet = async (
    file: string,
    columns: { name: string; data: unknown[] }[],
    schema: unknown[],
  ) => {
    const writer = new ByteWriter();
    parquetWrite({
      writer,
      columnData: columns as never,
      schema: [{ name: "root", num_children: columns.length }, ...schema] as never,
    });
    await writeFile(file, new Uint8Array(writer.getBuffer()));
  };

  it("reads golden_answers, or reward_model.ground_truth.target, with data_source and extra_info", async () => {
    const file = path.join(tmp, "train.parquet");
    await writeParquet(
      file,
      [
        { name: "id", data: ["train_0", "train_1"] },
        { name: "question", data: [" who wrote hamlet ", "what is the capital of france?"] },
        { name: "golden_answers", data: [["William Shakespeare", "Shakespeare"], ["Paris"]] },
        { name: "data_source", data: ["nq", "hotpotqa"] },
        {
          name: "reward_model",
          data: [
            { style: "rule", ground_truth: { target: ["William Shakespeare", "Shakespeare"] } },
            { style: "rule", ground_truth: { target: ["Paris"] } },
          ],
        },
      ],
      [
        str("id"),
        str("question"),
        ...stringList("golden_answers"),
        str("data_source"),
        { name: "reward_model", repetition_type: "OPTIONAL", num_children: 2 },
        str("style"),
        { name: "ground_truth", repetition_type: "OPTIONAL", num_children: 1 },
        ...stringList("target"),
      ],
    );
    const tasks = await Effect.runPromise(loadSearchR1Parquet(file, { searchR1Question: true }));
    expect(tasks).toEqual([
      {
        id: "train_0",
        question: "who wrote hamlet?",
        goldenAnswers: ["William Shakespeare", "Shakespeare"],
        metadata: { dataset: "nq", split: "train" },
      },
      {
        id: "train_1",
        question: "what is the capital of france?",
        goldenAnswers: ["Paris"],
        metadata: { dataset: "hotpotqa", split: "train" },
      },
    ]);

    // Only reward_model carries the answers here, and extra_info the split and index.
    const only = path.join(tmp, "only-target.parquet");
    await writeParquet(
      only,
      [
        { name: "question", data: ["q0"] },
        { name: "reward_model", data: [{ ground_truth: { target: ["a0", "b0"] } }] },
        { name: "extra_info", data: [{ split: "test", index: 17 }] },
      ],
      [
        str("question"),
        { name: "reward_model", repetition_type: "OPTIONAL", num_children: 1 },
        { name: "ground_truth", repetition_type: "OPTIONAL", num_children: 1 },
        ...stringList("target"),
        { name: "extra_info", repetition_type: "OPTIONAL", num_children: 2 },
        str("split"),
        { name: "index", type: "INT32", repetition_type: "OPTIONAL" },
      ],
    );
    const [task] = await Effect.runPromise(loadSearchR1Parquet(only));
    expect(task).toEqual({
      id: "17",
      question: "q0",
      goldenAnswers: ["a0", "b0"],
      metadata: { dataset: path.basename(tmp), split: "test" },
    });
  });

  it("names file, row and field when a row is wrong", async () => {
    const file = path.join(tmp, "broken.parquet");
    await writeParquet(
      file,
      [
        { name: "question", data: ["q0", null, "q2"] },
        { name: "golden_answers", data: [["a"], ["b"], ["c"]] },
      ],
      [str("question"), ...stringList("golden_answers")],
    );
    const error = failureOf(await Effect.runPromiseExit(loadSearchR1Parquet(file)));
    expect(error).toMatchObject({ _tag: "DatasetError", file, line: 1, field: "question" });
    expect((error as DatasetError).message).toContain("row 1");

    const noAnswers = path.join(tmp, "no-answers.parquet");
    await writeParquet(noAnswers, [{ name: "question", data: ["q0"] }], [str("question")]);
    expect(failureOf(await Effect.runPromiseExit(loadSearchR1Parquet(noAnswers)))).toMatchObject({
      line: 0,
      field: "golden_answers",
    });

    const notParquet = path.join(tmp, "not.parquet");
    await writeFile(notParquet, "hello");
    expect(failureOf(await Effect.runPromiseExit(loadSearchR1Parquet(notParquet)))).toMatchObject({
      _tag: "DatasetError",
      file: notParquet,
    });
  });
});

describe("searchR1Question", () => {
  it("strips and appends a question mark only when missing", () => {
    expect(searchR1Question("  who is it  ")).toBe("who is it?");
    expect(searchR1Question("who is it?")).toBe("who is it?");
    expect(searchR1Question("who is it? ")).toBe("who is it?");
  });

  it("is idempotent, trimmed and always ends with one added or kept question mark", () => {
    fc.assert(
      fc.property(fc.string(), (q) => {
        const once = searchR1Question(q);
        expect(searchR1Question(once)).toBe(once);
        expect(once.endsWith("?")).toBe(true);
        expect(once).toBe(once.trim());
        expect(once.length - q.trim().length).toBe(q.trim().endsWith("?") ? 0 : 1);
      }),
    );
  });
});
