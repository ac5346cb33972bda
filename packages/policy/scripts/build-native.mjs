// Compiles the native sampling engine (build/sampler.node) against the libllama that
// node-llama-cpp ships: headers from its bundled llama.cpp source (a git bundle, cloned offline),
// libraries prebuilt. Nothing is downloaded. WORKFLOW_R1_CUDA=1 links the CUDA build's libraries.
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, renameSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const build = join(pkg, "build");
const started = Date.now();
const pkgDir = (name, from = pkg) => {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return candidate;
    if (dirname(dir) === dir) throw new Error(`${name} is not installed (looked upwards from ${from})`);
  }
};
const nlcDir = pkgDir("node-llama-cpp");
const cuda = process.env.WORKFLOW_R1_CUDA === "1";
const sub = cuda ? "linux-x64-cuda" : "linux-x64";
const binDir = join(pkgDir(`@node-llama-cpp/${sub}`, nlcDir), "bins", sub);
const libs = readdirSync(binDir).filter(
  (f) =>
    f === "libggml-base.so" ||
    /^libggml(\.[a-z]+)?\.v[\d.]+\.so$/.test(f) ||
    /^libllama(\.[a-z]+)?\.v[\d.]+\.so$/.test(f),
);
if (libs.length !== 3)
  throw new Error(`expected libggml-base, libggml and libllama in ${binDir}, found ${libs.join(", ")}`);

mkdirSync(build, { recursive: true });
const src = join(build, "llama.cpp");
if (!existsSync(join(src, "include", "llama.h"))) {
  execFileSync("git", [
    "-c",
    "advice.detachedHead=false",
    "clone",
    "-q",
    "--no-checkout",
    join(nlcDir, "llama", "gitRelease.bundle"),
    src,
  ]);
  execFileSync("git", ["-C", src, "checkout", "-q", "HEAD", "--", "include", "ggml/include"]);
}
const flags = [
  "-std=c++17",
  "-O3",
  "-fno-math-errno",
  "-fPIC",
  "-fvisibility=hidden",
  "-DNAPI_VERSION=8",
  "-DNAPI_CPP_EXCEPTIONS",
  "-DNODE_ADDON_API_DISABLE_DEPRECATED",
  `-I${pkgDir("node-addon-api")}`,
  `-I${join(pkgDir("node-api-headers"), "include")}`,
  `-I${join(src, "include")}`,
  `-I${join(src, "ggml", "include")}`,
];
const nativeDir = join(pkg, "native");
const sources = readdirSync(nativeDir).filter((f) => f.endsWith(".cpp"));
const objDir = join(build, "obj");
mkdirSync(objDir, { recursive: true });
const cxx = process.env.CXX ?? "g++";
const run = promisify(execFile);
const pending = sources.map((f) => [join(nativeDir, f), join(objDir, `${f}.o`)]);
const objects = pending.map(([, o]) => o);
const worker = async () => {
  for (let next = pending.shift(); next; next = pending.shift()) {
    const [source, object] = next;
    await run(cxx, [...flags, "-c", source, "-o", object]).catch((e) => {
      process.stderr.write(e.stderr ?? String(e));
      throw new Error(`compiling ${relative(pkg, source)} failed`);
    });
  }
};
await Promise.all(Array.from({ length: Math.min(availableParallelism(), sources.length) }, worker));
execFileSync(
  cxx,
  [
    "-shared",
    ...objects,
    "-o",
    join(build, "sampler.node.tmp"),
    `-L${binDir}`,
    ...libs.map((l) => `-l:${l}`),
    `-Wl,-rpath,$ORIGIN/${relative(build, binDir)}`,
    `-Wl,-rpath,${binDir}`,
  ],
  { stdio: "inherit" },
);
renameSync(join(build, "sampler.node.tmp"), join(build, "sampler.node"));
console.log(
  `sampler.node built (${cuda ? "CUDA" : "CPU"} libraries in ${binDir}) in ${((Date.now() - started) / 1000).toFixed(1)} s`,
);
