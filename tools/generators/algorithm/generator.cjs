// `npx nx g @workflow-r1/tools:algorithm --name=NAME` → packages/algo-NAME, a policy-loss variant
// that registers itself with @workflow-r1/gsspo when imported (`algorithm.name: NAME`).
"use strict";

const path = require("node:path");
const { names, generateFiles, assertAbsent, afterWrite } = require("../lib.cjs");

/** The built-in variants cannot be replaced. */
const reserved = new Set(["grpo", "gspo", "gsspo"]);

/**
 * @param {import("../lib.cjs").Tree} tree
 * @param {{ name: string, description?: string, skipInstall?: boolean, skipFormat?: boolean }} options
 */
async function algorithmGenerator(tree, options) {
  const n = names(options.name);
  if (reserved.has(n.name))
    throw new Error(`--name ${n.name} is a built-in variant (${[...reserved].join(", ")})`);
  const packageDir = `packages/algo-${n.name}`;
  assertAbsent(tree, packageDir);
  const description =
    options.description ??
    `The ${n.name} policy-loss variant: GSsPO with every sub-sequence cut into chunks of at most 8 tokens and a soft clip (sigmoid gate) as its surrogate.`;
  const substitutions = { ...n, description: description.replace(/["\\`]/g, "") };
  generateFiles(tree, path.join(__dirname, "files"), packageDir, substitutions);
  generateFiles(tree, path.join(__dirname, "changeset"), ".changeset", substitutions);
  return afterWrite(tree.root, packageDir, `@workflow-r1/algo-${n.name}`, options, [packageDir]);
}

module.exports = algorithmGenerator;
