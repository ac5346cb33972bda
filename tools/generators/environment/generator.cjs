// `npx nx g @workflow-r1/tools:environment --name=NAME` → packages/env-NAME, a working multi-turn
// environment (a key-lookup task with one tool) that `workflow-r1 train --env NAME` runs at once.
"use strict";

const path = require("node:path");
const { names, generateFiles, assertAbsent, afterWrite } = require("../lib.cjs");

/** Names `--env` resolves to something else (built-ins of the trainer). */
const reserved = new Set(["synthetic", "workflow-r1", "qa"]);

/**
 * @param {import("../lib.cjs").Tree} tree
 * @param {{ name: string, description?: string, skipInstall?: boolean, skipFormat?: boolean }} options
 */
async function environmentGenerator(tree, options) {
  const n = names(options.name);
  if (reserved.has(n.name)) throw new Error(`--name ${n.name} is reserved (${[...reserved].join(", ")})`);
  const packageDir = `packages/env-${n.name}`;
  assertAbsent(tree, packageDir);
  const description =
    options.description ?? `The ${n.name} environment for workflow-r1: a multi-turn task with one tool.`;
  const substitutions = { ...n, description: description.replace(/["\\`]/g, "") };
  generateFiles(tree, path.join(__dirname, "files"), packageDir, substitutions);
  generateFiles(tree, path.join(__dirname, "changeset"), ".changeset", substitutions);
  return afterWrite(tree.root, packageDir, `@workflow-r1/env-${n.name}`, options, [packageDir]);
}

module.exports = environmentGenerator;
