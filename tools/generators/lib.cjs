// Shared helpers of the workflow-r1 generators. Plain CommonJS with JSDoc: nx loads generators with
// `require`, and TypeScript 7 has no JS compiler API to transpile a .ts generator on the fly.
// Only nx's own Tree is used (no @nx/devkit), so no nx plugin is pulled into the workspace.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { spawnSync } = require("node:child_process");

/** @typedef {{ root: string, exists(p: string): boolean, write(p: string, c: string): void, read(p: string, e: "utf-8"): string | null }} Tree */

/** Lowercase kebab-case: what npm and `--env NAME` accept without quoting. */
const namePattern = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;

/**
 * The spellings a template needs.
 * @param {string} name kebab-case name
 */
const names = (name) => {
  if (typeof name !== "string" || !namePattern.test(name))
    throw new Error(
      `--name is ${JSON.stringify(name)}; expected lowercase kebab-case (letters, digits, single dashes), e.g. "maze" or "word-chain"`,
    );
  const words = name.split("-");
  const className = words.map((w) => w[0].toUpperCase() + w.slice(1)).join("");
  return { name, className, propertyName: className[0].toLowerCase() + className.slice(1) };
};

/**
 * Every file under `dir`, as paths relative to it (sorted, so generation is deterministic).
 * @param {string} dir
 * @returns {string[]}
 */
const listFiles = (dir) => {
  /** @type {string[]} */
  const out = [];
  const walk = (/** @type {string} */ rel) => {
    for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const child = rel === "" ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) walk(child);
      else out.push(child);
    }
  };
  walk("");
  return out.sort();
};

/**
 * Replace `__key__` tokens in text by the values of `substitutions`.
 * @param {string} text
 * @param {Record<string, string>} substitutions
 */
const substitute = (text, substitutions) =>
  text.replace(/__([a-zA-Z]+)__/g, (match, key) =>
    Object.hasOwn(substitutions, key) ? substitutions[key] : match,
  );

/**
 * Copy the templates in `templateDir` into the tree under `targetDir`. Template files end in
 * `.template` (so biome, tsc and nx never treat them as sources); the suffix is dropped.
 * @param {Tree} tree
 * @param {string} templateDir
 * @param {string} targetDir workspace-relative
 * @param {Record<string, string>} substitutions
 * @returns {string[]} workspace-relative paths written
 */
const generateFiles = (tree, templateDir, targetDir, substitutions) => {
  const written = [];
  for (const rel of listFiles(templateDir)) {
    const target = path.posix.join(targetDir, substitute(rel.replace(/\.template$/, ""), substitutions));
    const content = substitute(fs.readFileSync(path.join(templateDir, rel), "utf-8"), substitutions);
    const leftover = content.match(/__[a-zA-Z]+__/);
    if (leftover) throw new Error(`template ${rel}: unknown placeholder ${leftover[0]}`);
    tree.write(target, content);
    written.push(target);
  }
  return written;
};

/**
 * Fail early when the package exists, so a generator never overwrites someone's work.
 * @param {Tree} tree
 * @param {string} dir
 */
const assertAbsent = (tree, dir) => {
  if (tree.exists(dir) || tree.exists(`${dir}/package.json`))
    throw new Error(`${dir} already exists; choose another --name or delete it first`);
};

/**
 * After the files are on disk: link the package into node_modules/@workflow-r1 (so dynamic
 * `import("@workflow-r1/…")` resolves at once, as npm workspaces would), format it with biome and,
 * unless skipped, run `npm install` so package-lock.json records the new workspace (`npm ci` needs it);
 * `--ignore-scripts` skips the root `prepare` (a full build) — the new package has no install step.
 * @param {string} root workspace root
 * @param {string} packageDir workspace-relative package folder
 * @param {string} packageName e.g. `@workflow-r1/env-maze`
 * @param {{ skipInstall?: boolean, skipFormat?: boolean }} options
 * @param {string[]} formatPaths workspace-relative paths biome formats
 */
const afterWrite = (root, packageDir, packageName, options, formatPaths) => () => {
  const scopeDir = path.join(root, "node_modules", ...packageName.split("/").slice(0, -1));
  const link = path.join(root, "node_modules", ...packageName.split("/"));
  if (fs.existsSync(scopeDir) && !fs.existsSync(link)) {
    fs.symlinkSync(path.relative(scopeDir, path.join(root, packageDir)), link, "dir");
  }
  const bin = path.join(root, "node_modules", ".bin");
  if (!options.skipFormat && fs.existsSync(path.join(bin, "biome"))) {
    // `check --write` formats and applies safe fixes (import order depends on the chosen name).
    const result = spawnSync(
      path.join(bin, "biome"),
      ["check", "--write", "--no-errors-on-unmatched", "--diagnostic-level=error", ...formatPaths],
      { cwd: root, encoding: "utf-8" },
    );
    if (result.status !== 0)
      throw new Error(
        `biome check --write failed on ${formatPaths.join(", ")}:\n${result.stdout}${result.stderr}`,
      );
  }
  if (!options.skipInstall) {
    const result = spawnSync(
      "npm",
      ["install", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts"],
      {
        cwd: root,
        stdio: "inherit",
      },
    );
    if (result.status !== 0) throw new Error("npm install failed; run it yourself to link the new workspace");
  }
};

module.exports = { names, namePattern, listFiles, substitute, generateFiles, assertAbsent, afterWrite };
