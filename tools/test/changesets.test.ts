/**
 * The release notes waiting in .changeset/ are readable by changesets: `changeset status` parses
 * every file (one with broken frontmatter stops every release) and names only workspace packages.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { bin, repoRoot } from "./workspace.js";

const changesetDir = path.join(repoRoot, ".changeset");
const workspacePackages = new Set(
  ["packages", "tools"].flatMap((dir) =>
    fs
      .readdirSync(path.join(repoRoot, dir), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => path.join(repoRoot, dir, entry.name, "package.json"))
      .concat(dir === "tools" ? [path.join(repoRoot, "tools", "package.json")] : [])
      .filter((file) => fs.existsSync(file))
      .map((file) => JSON.parse(fs.readFileSync(file, "utf8")).name as string),
  ),
);
const changesets = fs
  .readdirSync(changesetDir)
  .filter((name) => name.endsWith(".md") && name !== "README.md");

describe("changesets", () => {
  it.each(changesets)("%s has frontmatter naming workspace packages and a bump", (name) => {
    const text = fs.readFileSync(path.join(changesetDir, name), "utf8");
    const match = /^---\n([\s\S]*?)\n---\n+\S/.exec(text);
    expect(match, `${name}: must start with ---, "package": bump lines, ---, then a summary`).not.toBeNull();
    for (const line of match![1]!.split("\n")) {
      const entry = /^"([^"]+)": (patch|minor|major)$/.exec(line);
      expect(entry, `${name}: frontmatter line ${JSON.stringify(line)}`).not.toBeNull();
      expect(workspacePackages.has(entry![1]!), `${name}: ${entry![1]} is not a workspace package`).toBe(
        true,
      );
    }
  });

  it("are all accepted by `changeset status`", () => {
    const r = spawnSync(bin("changeset"), ["status"], { cwd: repoRoot, encoding: "utf8" });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toContain("Packages to be bumped");
  });
});
