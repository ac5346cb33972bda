/**
 * Bad command-line arguments end in one clear line and exit status 1, never a stack trace or a
 * NaN; a relative `--env` path is the user's file, resolved against the working directory.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { smallRun } from "./fixtures/settings.js";

const cli = path.resolve(import.meta.dirname, "../dist/cli.js");
const run = (args: string[], cwd?: string) =>
  spawnSync(process.execPath, [cli, ...args], {
    encoding: "utf8",
    env: { ...process.env, CI: "1" },
    ...(cwd && { cwd }),
  });

/** One `workflow-r1: …` line, no JavaScript stack. */
const expectOneLineError = (r: ReturnType<typeof run>, text: string) => {
  expect(r.status, r.stderr).toBe(1);
  expect(r.stderr).toContain(text);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stderr).not.toContain("NaN");
};

describe("command-line argument errors", () => {
  it("--set without = names the expected form (train and compare)", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-args-"));
    expectOneLineError(
      run(["train", "--set", "steps", "--out", path.join(dir, "a")]),
      "--set expects key=value",
    );
    expectOneLineError(
      run(["compare", "--set", "steps", "--out", path.join(dir, "b"), "--seeds", "1"]),
      "--set expects key=value",
    );
    expect(fs.existsSync(path.join(dir, "a"))).toBe(false);
  });

  it("--episodes must be indices", () => {
    const r = run(["trajectories", "/nonexistent.msgpack", "--episodes", "abc"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("expected comma-separated episode indices");
    expect(r.stderr).not.toContain("episode NaN");
  });

  it("integer flags refuse non-integers", () => {
    expectOneLineError(run(["train", "--steps", "ten"]), 'expected an integer, got "ten"');
  });

  it("resolves a relative --env path against the working directory", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-args-"));
    const out = path.join(dir, "run");
    const config = path.join(dir, "config.json");
    const settings = smallRun(out, 1);
    fs.writeFileSync(
      config,
      JSON.stringify({ ...settings, environment: { name: "./fixtures/vowel-env.mjs", options: {} } }),
    );
    // From the test folder, ./fixtures/vowel-env.mjs exists; from the CLI's dist/ folder it does not.
    const r = run(["train", "-c", config], import.meta.dirname);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain("[train] done: 1 steps");
  }, 120_000);
});
