#!/usr/bin/env bash
# Build llama.cpp's `llama-server` and `llama-batched-bench` from the llama.cpp source that
# node-llama-cpp bundles (node_modules/node-llama-cpp/llama/gitRelease.bundle), offline, into
# .cache/llama-server/bin/ at the repo root. HttpPolicy's integration test uses llama-server; the
# policy bench measures against both (llama-batched-bench is llama.cpp's own decode-throughput
# ceiling). Skips the build when both binaries exist (FORCE=1 rebuilds). JOBS sets the parallelism.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/.cache/llama-server"
bin="$out/bin/llama-server"
bench="$out/bin/llama-batched-bench"
bundle="$root/node_modules/node-llama-cpp/llama/gitRelease.bundle"
jobs="${JOBS:-2}"

if [ -x "$bin" ] && [ -x "$bench" ] && [ "${FORCE:-0}" != "1" ]; then
  echo "llama-server and llama-batched-bench already built in $out/bin (FORCE=1 to rebuild)"
  exit 0
fi
if [ ! -f "$bundle" ]; then
  echo "error: $bundle not found; run npm ci first" >&2
  exit 1
fi
for tool in git cmake g++; do
  command -v "$tool" >/dev/null || { echo "error: $tool is required to build llama-server" >&2; exit 1; }
done

start=$(date +%s)
src="$out/src"
build="$out/build"
mkdir -p "$out/bin"
if [ ! -d "$src/.git" ]; then
  rm -rf "$src"
  # A git bundle is a self-contained repository: cloning it needs no network.
  git clone --quiet "$bundle" "$src"
fi
echo "llama.cpp source: $(git -C "$src" describe --tags --always 2>/dev/null || echo unknown)"

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S "$src" -B "$build" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release \
  -DLLAMA_BUILD_SERVER=ON \
  -DGGML_NATIVE=OFF \
  -DLLAMA_CURL=OFF \
  -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF \
  >"$out/cmake-configure.log" 2>&1 || { tail -40 "$out/cmake-configure.log" >&2; exit 1; }
cmake --build "$build" --config Release --target llama-server llama-batched-bench -j "$jobs"

for name in llama-server llama-batched-bench; do
  built="$(find "$build" -type f -name "$name" -perm -u+x | head -1)"
  if [ -z "$built" ]; then
    echo "error: build finished but no $name binary was found under $build" >&2
    exit 1
  fi
  cp "$built" "$out/bin/$name.tmp" && mv "$out/bin/$name.tmp" "$out/bin/$name"
done
end=$(date +%s)
echo "built $bin and $bench in $((end - start)) s with -j$jobs"
