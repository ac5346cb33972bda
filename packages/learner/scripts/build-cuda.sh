#!/usr/bin/env bash
# Builds ggml's CUDA backend (libggml-cuda.so) for the GPUs of this machine from the ggml source
# that node-llama-cpp bundles, installs it beside node-llama-cpp's other CUDA libraries (so the
# policy, through node-llama-cpp, and the learner load the same library), then rebuilds the
# learner addon against them. Offline: needs the CUDA toolkit (nvcc), cmake, g++ and ninja or make.
# node-llama-cpp's prebuilt libggml-cuda.so targets CUDA 13 and carries no machine code for some
# GPUs (e.g. sm_90, H100/H200), so build it here once per machine.
#
#   bash packages/learner/scripts/build-cuda.sh            # GPUs of this machine (CUDA_ARCH=native)
#   CUDA_ARCH=90 bash packages/learner/scripts/build-cuda.sh
#
# Env: CUDA_ARCH (default native), CUDA_FA=ON to build the FlashAttention kernels (slow to
# compile; the learner does not use them), JOBS (default: cores), BUILD_DIR (default
# packages/learner/build/ggml-cuda).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pkg=$(dirname "$here")
find_up() { # find_up NAME: the first node_modules/NAME above the package
  local dir=$pkg
  while [ "$dir" != / ]; do
    [ -e "$dir/node_modules/$1" ] && { echo "$dir/node_modules/$1"; return; }
    dir=$(dirname "$dir")
  done
  echo "node_modules/$1 not found above $pkg (run npm install first)" >&2; exit 1
}
nlc=$(find_up node-llama-cpp)
cuda_bins=$(find_up @node-llama-cpp/linux-x64-cuda)/bins/linux-x64-cuda
command -v nvcc >/dev/null || { echo "nvcc not found: install the CUDA toolkit (and put its bin/ on PATH)" >&2; exit 1; }
command -v cmake >/dev/null || { echo "cmake not found" >&2; exit 1; }
build=${BUILD_DIR:-$pkg/build/ggml-cuda}
src=$build/src
if [ ! -f "$src/ggml/CMakeLists.txt" ]; then
  rm -rf "$src"
  git clone -q --no-checkout "$nlc/llama/gitRelease.bundle" "$src"
  git -C "$src" -c advice.detachedHead=false checkout -q HEAD -- ggml
  touch "$src/ggml/ggml.pc.in" # ggml's CMakeLists configures it; the bundle does not carry it
fi
# Precise mode: ggml-cuda lets cuBLAS run F32 products on TF32 tensor cores (10-bit mantissa),
# which moves log-probabilities by ~5e-3 against the CPU. This build reads WORKFLOW_R1_CUDA_TF32
# when it creates a cuBLAS handle: 0 keeps F32 products in full F32 (slower), anything else or
# unset keeps ggml's TF32 default. The edit is one line of the bundled source, made at build time.
common="$src/ggml/src/ggml-cuda/common.cuh"
if ! grep -q WORKFLOW_R1_CUDA_TF32 "$common"; then
  if grep -q "cublasSetMathMode(cublas_handles\[device\]\[curr_stream_no\], CUBLAS_TF32_TENSOR_OP_MATH)" "$common"; then
    sed -i 's/cublasSetMathMode(cublas_handles\[device\]\[curr_stream_no\], CUBLAS_TF32_TENSOR_OP_MATH)/cublasSetMathMode(cublas_handles[device][curr_stream_no], (getenv("WORKFLOW_R1_CUDA_TF32") \&\& getenv("WORKFLOW_R1_CUDA_TF32")[0] == 0x30) ? CUBLAS_DEFAULT_MATH : CUBLAS_TF32_TENSOR_OP_MATH)/' "$common"
  else
    echo "warning: ggml-cuda's cuBLAS math-mode line was not found; WORKFLOW_R1_CUDA_TF32=0 will have no effect" >&2
  fi
fi
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
start=$SECONDS
cmake -S "$src/ggml" -B "$build/out" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DGGML_CUDA=ON -DGGML_BACKEND_DL=ON -DGGML_NATIVE=OFF -DGGML_CUDA_NCCL=OFF \
  -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-native}" -DGGML_CUDA_FA="${CUDA_FA:-OFF}" \
  -DGGML_BUILD_TESTS=OFF -DGGML_BUILD_EXAMPLES=OFF >"$build/cmake.log" 2>&1 ||
  { tail -30 "$build/cmake.log"; echo "cmake failed (log: $build/cmake.log)" >&2; exit 1; }
cmake --build "$build/out" --target ggml-cuda -j "${JOBS:-$(nproc)}" >"$build/build.log" 2>&1 ||
  { tail -40 "$build/build.log"; echo "build failed (log: $build/build.log)" >&2; exit 1; }
lib=$(find "$build/out" -name libggml-cuda.so | head -1)
[ -n "$lib" ] || { echo "no libggml-cuda.so was produced" >&2; exit 1; }
cp "$lib" "$cuda_bins/libggml-cuda.so"
echo "libggml-cuda.so (CUDA_ARCH=${CUDA_ARCH:-native}) built in $((SECONDS - start)) s and installed in $cuda_bins"
WORKFLOW_R1_CUDA=1 node "$here/build-native.mjs"
