/**
 * Every package of the monorepo publishes its documentation whole: for each `packages/*`, the file
 * list of `npm pack --dry-run` holds a README.md, and every relative link in every markdown file it
 * ships (`[x](./README-io.md)`, `[x](SPEC.md#units)`, `[x](docs/a.md)`, images, reference
 * definitions) names a file of that same list. A link that leaves the package (`../../README.md`) or
 * names a file that `files` in package.json leaves out is broken on npm. Links with a scheme
 * (http:, https:, mailto:) and pure `#anchors` are not checked; `#anchor` and `?query` are cut off.
 * Links inside code (fenced blocks, `spans`) are not links.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const packagesDir = fileURLToPath(new URL("../../", import.meta.url));

const packageDirs = fs
  .readdirSync(packagesDir, { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && fs.existsSync(path.join(packagesDir, entry.name, "package.json")))
  .map((entry) => entry.name)
  .sort();

interface PackResult {
  readonly name: string;
  readonly files: ReadonlyArray<string>;
}

// The npm_* variables of an enclosing `npm test` (npm_config_local_prefix, npm_config_workspace…)
// would make the child npm pack another package than the one in its working directory.
const childEnv = (): NodeJS.ProcessEnv =>
  Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key)));

/** What `npm pack` would put in the tarball, without building (`--ignore-scripts`) or writing it. */
const packList = async (dir: string): Promise<PackResult> => {
  const { stdout } = await run("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], {
    cwd: dir,
    env: childEnv(),
    timeout: 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  const [info] = JSON.parse(stdout) as Array<{ name: string; files: Array<{ path: string }> }>;
  return { name: info!.name, files: info!.files.map((file) => file.path.split(path.sep).join("/")) };
};

/** The markdown with code removed: fenced blocks (``` or ~~~) and inline code spans. */
const withoutCode = (markdown: string): string => {
  const kept: string[] = [];
  let fence: string | undefined;
  for (const line of markdown.split("\n")) {
    const open = /^ {0,3}(`{3,}|~{3,})/.exec(line);
    if (fence === undefined && open) fence = open[1]!;
    else if (fence !== undefined && open && open[1]!.startsWith(fence)) fence = undefined;
    else if (fence === undefined) kept.push(line);
  }
  return kept.join("\n").replace(/(`+)[^`]+?\1/g, "");
};

/** Targets of inline links and images `[text](target "title")` and of reference definitions `[id]: target`. */
const linkTargets = (markdown: string): string[] => {
  const text = withoutCode(markdown);
  const inline = [...text.matchAll(/\]\(\s*(?:<([^>]*)>|([^)\s]+))(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/g)].map(
    (m) => m[1] ?? m[2]!,
  );
  const definitions = [...text.matchAll(/^ {0,3}\[[^\]\n]+\]:\s*<?([^\s>]+)>?/gm)].map((m) => m[1]!);
  return [...inline, ...definitions];
};

/** Why a link of `from` (a path inside the package) is broken, or undefined when it is fine or not relative. */
const brokenLink = (from: string, target: string, shipped: ReadonlySet<string>): string | undefined => {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith("//") || target.startsWith("#"))
    return undefined;
  const bare = decodeURI(target.replace(/[#?].*$/, ""));
  if (bare === "") return undefined;
  if (bare.startsWith("/")) return `${from}: link ${target} is an absolute path`;
  const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(from), bare));
  if (resolved === ".." || resolved.startsWith("../"))
    return `${from}: link ${target} points outside the package (${resolved})`;
  const asDirectory = `${resolved.replace(/\/$/, "")}/`;
  if (shipped.has(resolved) || [...shipped].some((file) => file.startsWith(asDirectory))) return undefined;
  return `${from}: link ${target} names ${resolved}, which is not in the tarball`;
};

describe.each(packageDirs)("packages/%s tarball", (dir) => {
  const root = path.join(packagesDir, dir);
  let pack: PackResult;
  beforeAll(async () => {
    pack = await packList(root);
  });

  it("is the package of this directory and ships a README.md", () => {
    expect(pack.name).toBe(JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")).name);
    expect(pack.files, `${pack.name} publishes no README.md`).toContain("README.md");
  });

  it("ships every file that its markdown links to relatively", () => {
    const shipped = new Set(pack.files);
    const problems: string[] = [];
    for (const file of pack.files.filter((f) => /\.md$/i.test(f)))
      for (const target of linkTargets(fs.readFileSync(path.join(root, file), "utf8"))) {
        const problem = brokenLink(file, target, shipped);
        if (problem !== undefined) problems.push(problem);
      }
    expect(problems, `${pack.name}: broken relative links in the published markdown`).toEqual([]);
  });
});

describe("link extraction", () => {
  it("finds inline links, images and definitions, but not code", () => {
    const markdown = [
      "See [io](./README-io.md#benchmarks), ![plot](docs/plot.png 'a plot') and [web](https://x.org).",
      "`[not](a-link.md)` and",
      "```ts",
      "const f = fns[0](x.md);",
      "```",
      "[spec]: SPEC.md",
      "[up](../../README.md) [anchor](#usage)",
    ].join("\n");
    expect(linkTargets(markdown)).toEqual([
      "./README-io.md#benchmarks",
      "docs/plot.png",
      "https://x.org",
      "../../README.md",
      "#usage",
      "SPEC.md",
    ]);
  });

  it("resolves against the linking file and the shipped list", () => {
    const shipped = new Set(["README.md", "README-io.md", "docs/a.md", "dist/index.js"]);
    expect(brokenLink("README.md", "./README-io.md#x", shipped)).toBeUndefined();
    expect(brokenLink("docs/a.md", "../README.md", shipped)).toBeUndefined();
    expect(brokenLink("README.md", "dist", shipped)).toBeUndefined();
    expect(brokenLink("README.md", "https://example.org/a.md", shipped)).toBeUndefined();
    expect(brokenLink("README.md", "#top", shipped)).toBeUndefined();
    expect(brokenLink("README.md", "BENCHMARKS.md", shipped)).toMatch(/not in the tarball/);
    expect(brokenLink("README.md", "../../README.md", shipped)).toMatch(/outside the package/);
    expect(brokenLink("README.md", "/README.md", shipped)).toMatch(/absolute path/);
  });
});
