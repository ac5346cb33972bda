/**
 * Each published package installs and works alone: build it from a copy of its sources, `npm pack`
 * it, install the tarballs into an empty project (their registry dependencies — effect, msgpackr,
 * hyparquet, minisearch — from the npm cache, or the registry when missing) and run a real
 * computation with plain node, which resolves the built `dist/` (no `development` condition).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bin, makeWorkspace, type Workspace } from "./workspace.js";

const packages = ["core", "gsspo", "env-qa", "env-arith"] as const;

let ws: Workspace;
let consumer: string;
const tarballs: Record<string, string> = {};

/** Run an ES module snippet with plain node in the consumer project; parse the JSON it prints. */
const runInConsumer = (code: string): unknown => {
  const output = ws.run("node", ["--input-type=module", "-e", code], { cwd: consumer }).stdout.trim();
  return JSON.parse(output.split("\n").at(-1)!);
};

beforeAll(() => {
  ws = makeWorkspace(packages);
  // Build from sources: `tsc -b` follows the project references (env-qa and gsspo → core).
  ws.run(bin("tsc"), ["-b", ...packages.map((p) => `packages/${p}`)]);
  const packDir = path.join(ws.root, "packs");
  fs.mkdirSync(packDir);
  for (const name of packages) {
    const out = ws.run("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", packDir], {
      cwd: `packages/${name}`,
    }).stdout;
    const [info] = JSON.parse(out);
    tarballs[name] = path.join(packDir, info.filename);
  }
  consumer = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-consumer-"));
  fs.writeFileSync(
    path.join(consumer, "package.json"),
    JSON.stringify({ name: "consumer", version: "1.0.0", private: true, type: "module" }),
  );
  // --ignore-scripts: msgpackr's optional native extension is not needed (it falls back to JS).
  ws.run(
    "npm",
    [
      "install",
      "--prefer-offline",
      "--no-audit",
      "--no-fund",
      "--ignore-scripts",
      ...Object.values(tarballs),
    ],
    { cwd: consumer },
  );
});

afterAll(() => {
  ws?.remove();
  if (consumer) fs.rmSync(consumer, { recursive: true, force: true });
});

describe("npm pack + install into an empty project", () => {
  it("ships only dist, src, README and package.json; the tarballs hold the built entry points", () => {
    for (const name of packages) {
      const listing = ws.run("tar", ["-tzf", tarballs[name]]).output.split("\n").filter(Boolean);
      expect(listing).toContain("package/dist/index.js");
      expect(listing).toContain("package/dist/index.d.ts");
      expect(listing).toContain("package/package.json");
      expect(listing.filter((f) => /^package\/(test|bench|node_modules)\//.test(f))).toEqual([]);
      // tsc -b keeps its build info in dist/; packages should list "!dist/.tsbuildinfo" in "files".
      if (listing.includes("package/dist/.tsbuildinfo"))
        console.warn(
          `@workflow-r1/${name} publishes dist/.tsbuildinfo: add "!dist/.tsbuildinfo" to its "files"`,
        );
    }
    expect(ws.run("tar", ["-tzf", tarballs["env-arith"]]).output).not.toContain(".tsbuildinfo");
    // gsspo's and env-qa's dependency on core was satisfied by core's tarball, not the registry.
    const installed = path.join(consumer, "node_modules", "@workflow-r1");
    expect(fs.readdirSync(installed).sort()).toEqual(["core", "env-arith", "env-qa", "gsspo"]);
    expect(fs.existsSync(path.join(installed, "gsspo", "node_modules", "@workflow-r1"))).toBe(false);
  });

  it("@workflow-r1/core: trajectory codec (msgpackr) and segments work from dist", () => {
    const result = runInConsumer(`
      const core = await import("@workflow-r1/core");
      const builder = new core.TrajectoryBuilder([1, 2, 3]);
      builder.appendSampled([10, 11], [-0.5, -1.25]);
      builder.appendObservation([20, 21]);
      builder.appendSampled([12], [-0.1]);
      const trajectory = builder.build({
        reward: 1, rewardParts: { accuracy: 1 }, groupId: "g0", taskId: "t", finishReason: "answer",
        turns: [
          { action: "a", observation: "o", operatorCalls: [], sampledTokens: 2, sampleMs: 1, envMs: 0 },
          { action: "b", operatorCalls: [], sampledTokens: 1, sampleMs: 1, envMs: 0 },
        ],
      });
      const decoded = core.decodeTrajectory(core.encodeTrajectory(trajectory));
      const segments = Array.from(core.segmentsFromMask(decoded.mask));
      const error = new core.EnvironmentError({ message: "boom" });
      console.log(JSON.stringify({
        resolved: import.meta.resolve("@workflow-r1/core").replace(/^.*node_modules\\//, ""),
        segments, count: core.segmentCount(segments), tag: error._tag,
        tokens: Array.from(decoded.tokens), typed: decoded.tokens.constructor.name,
      }));`);
    expect(result).toEqual({
      resolved: "@workflow-r1/core/dist/index.js",
      segments: [-1, -1, -1, 0, 0, -1, -1, 1],
      count: 2,
      tag: "EnvironmentError",
      tokens: [1, 2, 3, 10, 11, 20, 21, 12],
      typed: "Int32Array",
    });
  });

  it("@workflow-r1/gsspo: policyLoss and groupAdvantages on a tiny batch", () => {
    const result = runInConsumer(`
      const { groupAdvantages, policyLoss, policyLossVariants } = await import("@workflow-r1/gsspo");
      const advantages = Array.from(groupAdvantages([1, 0], ["t", "t"]));
      // One 2-token turn, ratio 1: GSsPO loss = -A, each token's coefficient -A/2 (seq-mean-token-mean).
      const mask = new Uint8Array([0, 1, 1, 0]);
      const logp = [NaN, -1.2, -0.4, NaN];
      const { loss, coefficients, metrics } = policyLoss([{ logpNew: logp, logpOld: logp, mask, advantage: 0.5 }]);
      console.log(JSON.stringify({
        resolved: import.meta.resolve("@workflow-r1/gsspo").replace(/^.*node_modules\\//, ""),
        advantages, loss, coefficients: Array.from(coefficients[0]), units: metrics.units,
        variants: policyLossVariants(),
      }));`) as Record<string, unknown>;
    expect(result["resolved"]).toBe("@workflow-r1/gsspo/dist/index.js");
    const [a, b] = result["advantages"] as number[];
    expect(a).toBeCloseTo(Math.SQRT1_2, 5);
    expect(b).toBeCloseTo(-Math.SQRT1_2, 5);
    expect(result["loss"]).toBeCloseTo(-0.5, 12);
    expect(result["coefficients"]).toEqual([0, -0.25, -0.25, 0]);
    expect(result["units"]).toBe(1);
    expect(result["variants"]).toEqual(expect.arrayContaining(["grpo", "gspo", "gsspo"]));
  });

  it("@workflow-r1/env-arith: the environmentPlugin runs an episode from dist", () => {
    const result = runInConsumer(`
      const { environmentPlugin: p } = await import("@workflow-r1/env-arith");
      const { Environment } = await import("@workflow-r1/core");
      const { Effect } = await import("effect");
      const options = { steps: 3 };
      const out = await Effect.runPromise(Effect.gen(function* () {
        const tasks = yield* p.tasks(options, "eval", 2);
        const episode = yield* (yield* Environment).reset(tasks[0]);
        const observations = [];
        let last;
        for (const turn of p.demonstrations(tasks[0], options)) {
          last = yield* episode.step(turn);
          if (last._tag === "Observation") observations.push(last.observation);
        }
        return { name: p.name, tasks: tasks.length, golden: tasks[0].goldenAnswers, observations, last };
      }).pipe(Effect.provide(p.layer(options))));
      console.log(JSON.stringify(out));`) as {
      name: string;
      tasks: number;
      golden: string[];
      observations: string[];
      last: Record<string, unknown>;
    };
    expect(result).toMatchObject({ name: "arith", tasks: 64, last: { _tag: "Done", reward: 1 } });
    expect(result.observations).toHaveLength(3);
    expect(result.observations[2]).toBe(`<result>${result.golden[0]}</result>`);
  });

  it("@workflow-r1/env-qa: imports with its own dependencies", () => {
    const result = runInConsumer(`
      const qa = await import("@workflow-r1/env-qa");
      console.log(JSON.stringify({
        resolved: import.meta.resolve("@workflow-r1/env-qa").replace(/^.*node_modules\\//, ""),
        exports: Object.keys(qa).length,
      }));`);
    expect(result).toMatchObject({ resolved: "@workflow-r1/env-qa/dist/index.js" });
  });
});
