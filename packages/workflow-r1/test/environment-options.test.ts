/**
 * `environment.options` are decoded with the plugin's Schema before a run starts: a typo or a bad
 * value fails with the option's name and leaves no run directory behind.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { decodeEnvironmentOptions, resolveEnvironment } from "../src/environments.js";
import { runTrain } from "../src/index.js";
import { failure, run } from "./fixtures/effects.js";

describe("environment options", () => {
  it("a misspelt option is refused by name before anything is written", async () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "wr1-envopts-")), "run");
    await expect(
      runTrain({ overrides: { out, environment: { name: "synthetic", options: { dificulty: 3 } } } }),
    ).rejects.toMatchObject({ _tag: "ConfigError", field: "environment.options" });
    await expect(
      runTrain({ overrides: { out, environment: { name: "synthetic", options: { dificulty: 3 } } } }),
    ).rejects.toThrow(/dificulty/);
    expect(fs.existsSync(out)).toBe(false);
  });

  it("passes valid options decoded, and options as written for a plugin without a Schema", async () => {
    const synthetic = await run(resolveEnvironment("synthetic"));
    expect(await run(decodeEnvironmentOptions(synthetic, { difficulty: [2, 4], trainTasks: 8 }))).toEqual({
      difficulty: [2, 4],
      trainTasks: 8,
    });
    expect((await failure(decodeEnvironmentOptions(synthetic, { difficulty: 0 }))).message).toMatch(
      /difficulty/,
    );
    const { optionsSchema: _none, ...withoutSchema } = synthetic;
    expect(await run(decodeEnvironmentOptions(withoutSchema, { anything: 1 }))).toEqual({ anything: 1 });
  });
});
