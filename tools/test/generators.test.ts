/**
 * Each generator runs with the real `nx g` into a temporary copy of the workspace; what it
 * produces must then build (`tsc -b`), typecheck, pass its own tests (`vitest run`) and biome.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bin, makeWorkspace, type Workspace } from "./workspace.js";

let ws: Workspace;
beforeAll(() => {
  ws = makeWorkspace(["core", "gsspo"]);
});
afterAll(() => ws?.remove());

const generate = (generator: string, name: string, allowFailure = false) =>
  ws.run(bin("nx"), ["g", `@workflow-r1/tools:${generator}`, `--name=${name}`, "--skipInstall"], {
    allowFailure,
  });

/** Build, typecheck, test and lint a generated package; return its vitest output. */
const verify = (dir: string): string => {
  ws.run(bin("tsc"), ["-b"], { cwd: dir });
  ws.run(bin("tsc"), ["-p", "tsconfig.check.json"], { cwd: dir });
  // biome-ignore lint/suspicious/noControlCharactersInRegex: strip ANSI colours from vitest's summary
  const tests = ws.run(bin("vitest"), ["run"], { cwd: dir }).output.replace(/\x1b\[[0-9;]*m/g, "");
  // Not .changeset: biome 2.6 misreads changeset frontmatter as markdown headings (repo-wide).
  ws.run(bin("biome"), ["check", dir]);
  return tests;
};

describe("@workflow-r1/tools:environment", () => {
  it("creates a package that builds, passes its tests and plugs into the trainer's import", () => {
    const output = generate("environment", "grid-walk").output;
    for (const file of [
      "packages/env-grid-walk/package.json",
      "packages/env-grid-walk/src/index.ts",
      "packages/env-grid-walk/test/environment.test.ts",
      "packages/env-grid-walk/README.md",
      ".changeset/env-grid-walk-initial-release.md",
    ])
      expect(output).toContain(`CREATE ${file}`);
    const tests = verify("packages/env-grid-walk");
    expect(tests).toMatch(/Tests\s+9 passed/);

    // What `workflow-r1 train --env grid-walk` does: import the package by name (built dist, no
    // development condition) and run an episode with the plugin's tasks and demonstrations.
    const script = `
      const { environmentPlugin: p } = await import("@workflow-r1/env-grid-walk");
      const { Environment } = await import("@workflow-r1/core");
      const { Effect } = await import("effect");
      const out = await Effect.runPromise(Effect.gen(function* () {
        const [task] = yield* p.tasks({ hops: 3 }, "train", 5);
        const episode = yield* (yield* Environment).reset(task);
        let last;
        for (const turn of p.demonstrations(task, { hops: 3 })) last = yield* episode.step(turn);
        return { name: p.name, turns: p.demonstrations(task, { hops: 3 }).length, last };
      }).pipe(Effect.provide(p.layer({ hops: 3 }))));
      console.log(JSON.stringify(out));`;
    const result = JSON.parse(ws.run("node", ["--input-type=module", "-e", script]).output.trim());
    expect(result).toMatchObject({ name: "grid-walk", turns: 4, last: { _tag: "Done", reward: 1 } });

    // nx sees the new project with the usual targets.
    const project = JSON.parse(
      ws.run(bin("nx"), ["show", "project", "@workflow-r1/env-grid-walk", "--json"]).output,
    );
    expect(Object.keys(project.targets)).toEqual(
      expect.arrayContaining(["build", "test", "typecheck", "lint"]),
    );
  });

  it("refuses a bad name, a reserved name and an existing package", () => {
    const bad = generate("environment", "Bad_Name", true);
    expect(bad.status).not.toBe(0);
    expect(bad.output).toMatch(/kebab-case|pattern/);
    expect(generate("environment", "synthetic", true).output).toContain("reserved");
    const again = generate("environment", "grid-walk", true);
    expect(again.status).not.toBe(0);
    expect(again.output).toContain("already exists");
  });
});

describe("@workflow-r1/tools:algorithm", () => {
  it("creates a registered policy-loss variant that builds and passes its gradient test", () => {
    const output = generate("algorithm", "pairs").output;
    expect(output).toContain("CREATE packages/algo-pairs/src/index.ts");
    expect(output).toContain("CREATE .changeset/algo-pairs-initial-release.md");
    const tests = verify("packages/algo-pairs");
    expect(tests).toMatch(/Tests\s+4 passed/);

    // Importing the built package registers the variant in the gsspo registry it shares.
    const script = `
      await import("@workflow-r1/algo-pairs");
      const { policyLoss, policyLossVariants } = await import("@workflow-r1/gsspo");
      const mask = new Uint8Array([0, 1, 1, 0, 1]);
      const logpOld = [NaN, -1.2, -0.4, NaN, -2.0];
      const r = policyLoss([{ logpNew: logpOld, logpOld, mask, advantage: 1 }], { variant: "pairs" });
      console.log(JSON.stringify({ has: policyLossVariants().includes("pairs"), loss: r.loss, units: r.metrics.units }));`;
    const result = JSON.parse(ws.run("node", ["--input-type=module", "-e", script]).output.trim());
    // Ratio 1 everywhere: the soft clip is −A·s there, loss = −A = −1; two cycles of ≤ 8 tokens are two units.
    expect(result).toEqual({ has: true, loss: -1, units: 2 });
  });

  it("refuses to replace a built-in variant", () => {
    expect(generate("algorithm", "gsspo", true).output).toContain("built-in");
  });
});
