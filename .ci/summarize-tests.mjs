// Sums vitest's per-package "Tests  N passed | M failed | K skipped" lines from a test log and
// prints one closing line, "N passed, M failed, K skipped", that CI systems read.
import { readFileSync } from "node:fs";

const ansi = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g");
const log = readFileSync(process.argv[2], "utf8").replace(ansi, "");
let passed = 0;
let failed = 0;
let skipped = 0;
let packages = 0;
for (const line of log.split("\n")) {
  // nx prefixes each line with the project name ("@workflow-r1/core:   Tests  15 passed (15)").
  const m = /(?:^|\s)Tests\s+(\d.*)\(\d+\)\s*$/.exec(line);
  if (!m) continue;
  packages++;
  for (const [, n, kind] of m[1].matchAll(/(\d+)\s+(passed|failed|skipped|todo)/g)) {
    if (kind === "passed") passed += Number(n);
    else if (kind === "failed") failed += Number(n);
    else skipped += Number(n);
  }
}
console.log(`\nTest summary over ${packages} packages:`);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
