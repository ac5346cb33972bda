// Compiles the native addon (build/learner.node) against the ggml that node-llama-cpp ships:
// headers from its bundled llama.cpp source (git bundle, cloned offline), libraries prebuilt.
// Nothing is downloaded. WORKFLOW_R1_CUDA=1 links the CUDA build's libraries instead.
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = resolve(here, "..");
const build = join(pkg, "build");
const started = Date.now();

// Package folders found by walking up node_modules (some packages do not export package.json).
const pkgDir = (name, from = pkg) => {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return candidate;
    if (dirname(dir) === dir) throw new Error(`${name} is not installed (looked upwards from ${from})`);
  }
};
const nlcDir = pkgDir("node-llama-cpp");
const bundle = join(nlcDir, "llama", "gitRelease.bundle");
const cuda = process.env.WORKFLOW_R1_CUDA === "1";
const binPackage = cuda ? "@node-llama-cpp/linux-x64-cuda" : "@node-llama-cpp/linux-x64";
const binDir = join(pkgDir(binPackage, nlcDir), "bins", cuda ? "linux-x64-cuda" : "linux-x64");
if (!existsSync(join(binDir, "libggml-base.so"))) throw new Error(`no libggml-base.so in ${binDir}`);

mkdirSync(build, { recursive: true });
const src = join(build, "llama.cpp");
if (!existsSync(join(src, "ggml", "include", "ggml.h"))) {
  // Only the headers and the two files the ABI check reads are checked out.
  execFileSync("git", ["-c", "advice.detachedHead=false", "clone", "-q", "--no-checkout", bundle, src], {
    stdio: "inherit",
  });
  execFileSync(
    "git",
    ["-C", src, "checkout", "-q", "HEAD", "--", "ggml/include", "ggml/CMakeLists.txt", "ggml/src/ggml.c"],
    {
      stdio: "inherit",
    },
  );
}
const cmake = readFileSync(join(src, "ggml", "CMakeLists.txt"), "utf8");
const v = (k) => new RegExp(`set\\(GGML_VERSION_${k} (\\d+)\\)`).exec(cmake)[1];
const version = `${v("MAJOR")}.${v("MINOR")}.${v("PATCH")}`;
const ggmlC = readFileSync(join(src, "ggml", "src", "ggml.c"), "utf8");
const table = ggmlC.slice(ggmlC.indexOf("static const char * GGML_OP_NAME[GGML_OP_COUNT]"));
const names = table.slice(0, table.indexOf("};")).match(/"([A-Z0-9_]+)"/g);
const lastOp = names[names.length - 1].replaceAll('"', "");

const napiInclude = pkgDir("node-addon-api");
const nodeInclude = join(pkgDir("node-api-headers"), "include");
const libs = readdirLibs(binDir);
// rpath: absolute (this checkout) and relative to the addon (hoisted node_modules layouts).
const rel = relative(build, binDir);
const defines = [
  "-DNAPI_VERSION=8",
  "-DNAPI_CPP_EXCEPTIONS",
  "-DNODE_ADDON_API_DISABLE_DEPRECATED",
  `-DWR1_GGML_VERSION="${version}"`,
  `-DWR1_LAST_OP="${lastOp}"`,
];
const includes = [`-I${napiInclude}`, `-I${nodeInclude}`, `-I${join(src, "ggml", "include")}`];
// One object per source file (native/*.cpp, native/arch/*.cpp), compiled in parallel, then linked.
const nativeDir = join(pkg, "native");
const sources = readdirSync(nativeDir, { recursive: true })
  .filter((f) => f.endsWith(".cpp"))
  .map((f) => join(nativeDir, f));
const objDir = join(build, "obj");
mkdirSync(objDir, { recursive: true });
const cxx = process.env.CXX ?? "g++";
const run = promisify(execFile);
const objects = sources.map((f) => join(objDir, `${relative(nativeDir, f).replaceAll("/", "_")}.o`));
const pending = sources.map((f, i) => [f, objects[i]]);
const worker = async () => {
  for (let next = pending.shift(); next; next = pending.shift()) {
    const [source, object] = next;
    await run(cxx, [
      "-std=c++17",
      "-O3",
      "-fno-math-errno",
      "-fPIC",
      "-fvisibility=hidden",
      ...defines,
      ...includes,
      "-c",
      source,
      "-o",
      object,
    ]).catch((e) => {
      process.stderr.write(e.stderr ?? String(e));
      throw new Error(`compiling ${relative(pkg, source)} failed`);
    });
  }
};
await Promise.all(Array.from({ length: Math.min(availableParallelism(), sources.length) }, worker));
const args = [
  "-shared",
  ...objects,
  "-o",
  join(build, "learner.node.tmp"),
  `-L${binDir}`,
  ...libs.map((l) => `-l:${l}`),
  `-Wl,-rpath,$ORIGIN/${rel}`,
  `-Wl,-rpath,${binDir}`,
];
execFileSync(cxx, args, { stdio: "inherit" });
// Rename, so a process that has the old addon loaded keeps its (unlinked) file intact.
renameSync(join(build, "learner.node.tmp"), join(build, "learner.node"));
console.log(
  `learner.node built against ggml ${version} (${cuda ? "CUDA" : "CPU"} libraries in ${binDir}) in ${((Date.now() - started) / 1000).toFixed(1)} s`,
);

function readdirLibs(dir) {
  const found = ["libggml-base.so"];
  const reg = execFileSync("ls", [dir], { encoding: "utf8" })
    .split("\n")
    // CPU package: libggml.v0.5.0.so; CUDA package: libggml.cuda.v0.5.0.so; a source build: libggml.so.
    .find((f) => /^libggml(\.[a-z]+)?\.v[\d.]+\.so$/.test(f) || f === "libggml.so");
  if (!reg) throw new Error(`no libggml backend-registry library in ${dir}`);
  found.push(reg);
  return found;
}
