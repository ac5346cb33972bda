/**
 * A throwaway copy of the workspace for generator and packaging tests: the root config files,
 * packages/core and packages/gsspo (sources only), tools/, and a node_modules folder whose entries
 * link to the real ones — except `@workflow-r1/*`, which link to the copies, so whatever a test
 * generates, builds or links never touches the real workspace.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export const repoRoot = path.resolve(import.meta.dirname, "../..");
const realModules = path.join(repoRoot, "node_modules");
export const bin = (name: string) => path.join(realModules, ".bin", name);

const rootFiles = [
  "package.json",
  "nx.json",
  "tsconfig.base.json",
  "vitest.setup.ts",
  "vitest.shared.ts",
  "biome.json",
  ".gitignore",
];
const skipped = new Set(["node_modules", "dist", ".nx", "coverage", "runs"]);

export interface Workspace {
  readonly root: string;
  /** Run a command in the workspace (or a folder of it); throws with its output when it fails. */
  readonly run: (
    command: string,
    args: ReadonlyArray<string>,
    options?: { cwd?: string; allowFailure?: boolean },
  ) => RunResult;
  readonly remove: () => void;
}

export interface RunResult {
  readonly status: number | null;
  /** stdout then stderr. */
  readonly output: string;
  readonly stdout: string;
}

/** The outer vitest run's variables must not leak into the inner vitest, nx and node runs. */
const childEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${path.dirname(process.execPath)}:${path.join(realModules, ".bin")}:${process.env["PATH"]}`,
    NX_DAEMON: "false",
    NX_NO_CLOUD: "true",
    NX_TUI: "false",
    // Plain text: the tests match nx's and vitest's output (CI sets colours on otherwise).
    FORCE_COLOR: "0",
    NO_COLOR: "1",
  };
  for (const key of Object.keys(env))
    if (
      key.startsWith("VITEST") ||
      key.startsWith("npm_") || // `npm test -w …` sets npm_config_workspace & co., which would redirect inner npm calls
      key === "NODE_OPTIONS" ||
      key === "TEST" ||
      key === "NODE_ENV"
    )
      delete env[key];
  return env;
};

const ansi = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g");
const stripAnsi = (text: string) => text.replace(ansi, "");

const copyTree = (from: string, to: string) =>
  fs.cpSync(from, to, { recursive: true, filter: (source) => !skipped.has(path.basename(source)) });

export const makeWorkspace = (packages: ReadonlyArray<string> = ["core", "gsspo"]): Workspace => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-ws-"));
  for (const file of rootFiles) fs.copyFileSync(path.join(repoRoot, file), path.join(root, file));
  for (const name of packages)
    copyTree(path.join(repoRoot, "packages", name), path.join(root, "packages", name));
  copyTree(path.join(repoRoot, "tools"), path.join(root, "tools"));
  // The copy holds only some packages: drop tools' implicit dependencies on the others, or nx refuses the graph.
  const toolsManifest = path.join(root, "tools", "package.json");
  const { nx: _nx, ...manifest } = JSON.parse(fs.readFileSync(toolsManifest, "utf-8"));
  fs.writeFileSync(toolsManifest, JSON.stringify(manifest, null, 2));
  const modules = path.join(root, "node_modules");
  fs.mkdirSync(path.join(modules, "@workflow-r1"), { recursive: true });
  for (const entry of fs.readdirSync(realModules)) {
    if (entry === "@workflow-r1" || entry === ".package-lock.json" || entry === ".vite") continue;
    fs.symlinkSync(path.join(realModules, entry), path.join(modules, entry));
  }
  for (const name of packages)
    fs.symlinkSync(`../../packages/${name}`, path.join(modules, "@workflow-r1", name));
  fs.symlinkSync("../../tools", path.join(modules, "@workflow-r1", "tools"));
  const run: Workspace["run"] = (command, args, options = {}) => {
    const result = spawnSync(command, args, {
      cwd: options.cwd ? path.resolve(root, options.cwd) : root,
      encoding: "utf-8",
      env: childEnv(),
      maxBuffer: 64 * 1024 * 1024,
    });
    const output = stripAnsi(
      `${result.stdout ?? ""}${result.stderr ?? ""}${result.error ? String(result.error) : ""}`,
    );
    if (result.status !== 0 && !options.allowFailure)
      throw new Error(
        `\`${command} ${args.join(" ")}\` in ${options.cwd ?? "."} exited with ${result.status}:\n${output}`,
      );
    return { status: result.status, output, stdout: result.stdout ?? "" };
  };
  return { root, run, remove: () => fs.rmSync(root, { recursive: true, force: true }) };
};
