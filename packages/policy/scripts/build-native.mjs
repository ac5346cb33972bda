// Compiles the native sampling engine against the libllama that node-llama-cpp ships: headers from
// its bundled llama.cpp source (a git bundle, cloned offline), libraries prebuilt. Nothing is
// downloaded. Links build/sampler.node against the CPU libraries and, when node-llama-cpp's CUDA
// package is installed, build/sampler-cuda.node against the CUDA ones (the policy loads the one
// that matches the libraries node-llama-cpp loaded: two libllama copies must not share a process).
// WORKFLOW_R1_CUDA=1 makes the CUDA flavour required.
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
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
const cudaRequired = process.env.WORKFLOW_R1_CUDA === "1";
/** The flavours to link: [output file, the libraries' directory]. */
const flavours = [];
for (const [file, sub] of [
  ["sampler.node", "linux-x64"],
  ["sampler-cuda.node", "linux-x64-cuda"],
]) {
  let dir;
  try {
    dir = join(pkgDir(`@node-llama-cpp/${sub}`, nlcDir), "bins", sub);
  } catch (e) {
    if (sub === "linux-x64" || cudaRequired) throw e;
    continue;
  }
  const libs = readdirSync(dir).filter(
    (f) =>
      f === "libggml-base.so" ||
      /^libggml(\.[a-z]+)?\.v[\d.]+\.so$/.test(f) ||
      /^libllama(\.[a-z]+)?\.v[\d.]+\.so$/.test(f),
  );
  if (libs.length !== 3)
    throw new Error(`expected libggml-base, libggml and libllama in ${dir}, found ${libs.join(", ")}`);
  flavours.push({ file, dir, libs });
}

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
  // Only the headers are needed; the clone's history (34 MB) would bloat what ships to a GPU machine.
  rmSync(join(src, ".git"), { recursive: true, force: true });
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
    // sampling.cpp's vocabulary-wide loops vectorise only with -ffast-math (see its comment).
    const extra = source.endsWith("sampling.cpp") ? ["-ffast-math"] : [];
    await run(cxx, [...flags, ...extra, "-c", source, "-o", object]).catch((e) => {
      process.stderr.write(e.stderr ?? String(e));
      throw new Error(`compiling ${relative(pkg, source)} failed`);
    });
  }
};
await Promise.all(Array.from({ length: Math.min(availableParallelism(), sources.length) }, worker));
for (const { file, dir, libs } of flavours) {
  execFileSync(
    cxx,
    [
      "-shared",
      ...objects,
      "-o",
      join(build, `${file}.tmp`),
      `-L${dir}`,
      ...libs.map((l) => `-l:${l}`),
      `-Wl,-rpath,$ORIGIN/${relative(build, dir)}`,
      `-Wl,-rpath,${dir}`,
    ],
    { stdio: "inherit" },
  );
  renameSync(join(build, `${file}.tmp`), join(build, file));
}
console.log(
  `${flavours.map((f) => `${f.file} (libraries in ${relative(pkg, f.dir)})`).join(", ")} built in ${((Date.now() - started) / 1000).toFixed(1)} s`,
);
