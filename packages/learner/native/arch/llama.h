// The llama transformer block (RMSNorm, RoPE attention with GQA and optional q/k/v/o biases,
// SwiGLU feed-forward); qwen2 is the same block with NEOX rotary embeddings.
#pragma once

#include "../model.h"

namespace wr1 {

ggml_tensor *llamaBlock(const Model &m, ggml_context *ctx, const Layer &b, ggml_tensor *x, const GraphInputs &in,
                        int64_t L, int64_t B);

extern const Architecture llamaArchitecture;

}  // namespace wr1
