// The README's example, kept here so `tsc -p tsconfig.check.json` proves it compiles (not run by vitest).
import { evaluate, writeReports } from "@workflow-r1/eval";
import { LlamaCppPolicy } from "@workflow-r1/policy";
import { Effect } from "effect";

export const readmeExample = async () => {
  const benchmarks = [
    { name: "toy", tasks: [{ id: "q0", question: "Capital of France?", goldenAnswers: ["Paris"] }] },
  ];
  const program = evaluate({
    benchmarks,
    method: ["direct", "cot"],
    limit: 50,
    resultsFile: "out/results.jsonl",
  });
  const run = await Effect.runPromise(
    program.pipe(Effect.provide(LlamaCppPolicy.layer({ modelPath: "model.gguf" }))),
  );
  await writeReports("out", run.report); // out/report.json, out/report.md, out/report.html
  console.log(
    run.report.summaries.map((s) => `${s.benchmark}/${s.method}: EM ${(100 * s.em.mean).toFixed(1)}`),
  );
};
