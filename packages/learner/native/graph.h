// Graph building: per-position log-probabilities of the next token, and the changes to ggml's
// automatic backward that keep every node a fast kernel that the backend has.
#pragma once

#include <string>

#include "model.h"

namespace wr1 {

// [1, L*B]: position t of row r predicts tokens[r*L + t + 1]. `training` picks the target logit
// with a one-hot product (its backward is elementwise on every backend) instead of get_rows.
ggml_tensor *buildLogprobs(const Model &m, ggml_context *ctx, int64_t L, int64_t B, GraphInputs &in, bool training);

// Rewrites ggml's automatic backward into kernels every backend runs fast; returns a graph of the
// same computation without gradient bookkeeping.
// - ggml differentiates mul_mat into OUT_PROD nodes: rank-1 update loops on the CPU, and on CUDA
//   only for F32 operands. Each OUT_PROD(a, b) becomes MUL_MAT(aᵀ, bᵀ) over contiguous copies
//   (frozen quantized weights are dequantized first with get_rows over `in.rows`).
// - With `denseEmbedding`, the token embedding's GET_ROWS_BACK becomes a product with the tokens'
//   one-hot matrix (inputs in.embedIndex / in.embedZeros are created here).
ggml_cgraph *rewriteBackward(const Model &m, ggml_context *ctx, ggml_cgraph *graph, size_t capacity, GraphInputs &in,
                             int64_t tokens);

// Throws when the backend cannot run a node (op, tensor types and shapes named), before any
// computation, instead of letting ggml abort the process.
void checkSupported(ggml_backend_t backend, ggml_cgraph *graph);

// What checkSupported says of an op the backend lacks (CPU: MUL_MAT(F32, F16); GPU: OUT_PROD
// with an F16 first operand); for tests.
std::string probeUnsupportedOp(const std::string &backendsDir, bool gpu);

}  // namespace wr1
