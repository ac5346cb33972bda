#include "graph.h"

#include <algorithm>
#include <map>
#include <string>

namespace wr1 {

ggml_tensor *buildLogprobs(const Model &m, ggml_context *ctx, int64_t L, int64_t B, GraphInputs &in, bool training) {
  const int64_t N = L * B, V = m.hp.vocab;
  in.tokens = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, N);
  in.positions = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, N);
  in.mask = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, L, L, 1, B);
  for (auto *t : {in.tokens, in.positions, in.mask}) ggml_set_input(t);
  ggml_tensor *x = ggml_get_rows(ctx, m.tokEmbd, in.tokens);  // [d, N]
  for (const Layer &b : m.blocks) x = m.arch->block(m, ctx, b, x, in, L, B);
  x = ggml_mul(ctx, ggml_rms_norm(ctx, x, m.hp.eps), m.outNorm);
  ggml_tensor *logits = m.matmul(ctx, m.output ? m.output : m.tokEmbd, x, in.adapter);  // [V, N]
  // logp = (x_target − max) − log Σ exp(x − max); the max goes through I32 so autodiff treats it
  // as a constant.
  ggml_tensor *mx = ggml_pool_1d(ctx, logits, GGML_OP_POOL_MAX, (int)V, (int)V, 0);  // [1, N]
  mx = ggml_cast(ctx, ggml_cast(ctx, mx, GGML_TYPE_I32), GGML_TYPE_F32);
  ggml_tensor *xm = ggml_add(ctx, logits, ggml_neg(ctx, mx));
  ggml_tensor *lse = ggml_log(ctx, ggml_sum_rows(ctx, ggml_exp(ctx, xm)));  // [1, N]
  ggml_tensor *picked;
  if (training) {
    // get_rows' backward (GET_ROWS_BACK) scans every index for every output row on CUDA: over a
    // [1, V*N] view that is V*N*N steps. A one-hot mask written with set_rows costs V*N.
    in.pick = ggml_new_tensor_1d(ctx, GGML_TYPE_I64, N);
    in.pickOnes = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 1, N);
    in.pickZeros = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 1, V * N);
    for (auto *t : {in.pick, in.pickOnes, in.pickZeros}) ggml_set_input(t);
    ggml_tensor *onehot = ggml_reshape_2d(ctx, ggml_set_rows(ctx, in.pickZeros, in.pickOnes, in.pick), V, N);
    picked = ggml_sum_rows(ctx, ggml_mul(ctx, xm, onehot));  // [1, N]
  } else {
    in.pick = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, N);
    ggml_set_input(in.pick);
    picked = ggml_reshape_2d(ctx, ggml_get_rows(ctx, ggml_reshape_2d(ctx, xm, 1, V * N), in.pick), 1, N);
  }
  ggml_tensor *logp = ggml_add(ctx, picked, ggml_neg(ctx, lse));
  ggml_set_output(logp);
  return logp;
}

namespace {

// dst = contiguous copy of the F32 view `a`, whose rows (dimension 1) are contiguous and whose
// dimension 0 is strided: a transposed view. ggml's CPU CONT walks the destination in order and
// reads the source one element per cache line (3–9 GB/s here); 8 × 8 tiles, each written row by
// row, run at 20–29 GB/s. Larger tiles lose to cache-set conflicts at power-of-two strides.
void copyTransposedF32(ggml_tensor *dst, const ggml_tensor *a, int ith, int nth, void *) {
  constexpr int64_t tile = 8;
  const int64_t n0 = a->ne[0], n1 = a->ne[1], planes = a->ne[2] * a->ne[3];
  const int64_t tiles0 = (n0 + tile - 1) / tile, tiles1 = (n1 + tile - 1) / tile;
  const int64_t jobs = planes * tiles1;  // one job: a band of 8 destination rows of one plane
  const size_t stride = a->nb[0] / sizeof(float);
  for (int64_t job = ith; job < jobs; job += nth) {
    const int64_t p = job / tiles1, t1 = job % tiles1 * tile, e1 = std::min(t1 + tile, n1);
    const int64_t i2 = p % a->ne[2], i3 = p / a->ne[2];
    const float *src = (const float *)((const char *)a->data + i2 * a->nb[2] + i3 * a->nb[3]);
    float *out = (float *)((char *)dst->data + i2 * dst->nb[2] + i3 * dst->nb[3]);
    for (int64_t t = 0; t < tiles0; t++) {
      const int64_t t0 = t * tile, e0 = std::min(t0 + tile, n0);
      for (int64_t i1 = t1; i1 < e1; i1++)
        for (int64_t i0 = t0; i0 < e0; i0++) out[i1 * n0 + i0] = src[i0 * stride + i1];
    }
  }
}

bool onCpu(const Model &m) {
  return ggml_backend_dev_type(ggml_backend_get_device(m.backend.get())) == GGML_BACKEND_DEVICE_TYPE_CPU;
}

// A contiguous tensor holding xᵀ (dimensions 0 and 1 swapped); reuses the source of a transpose.
ggml_tensor *transposed(const Model &m, ggml_context *ctx, ggml_tensor *x, ggml_tensor *rows) {
  if (x->op == GGML_OP_TRANSPOSE && x->view_offs == 0 && ggml_is_contiguous(x->src[0])) return x->src[0];
  if (ggml_is_quantized(x->type)) {
    // No kernel transposes quantized blocks: dequantize the (frozen) matrix to F32 first.
    if (ggml_n_dims(x) > 2) throw Error(std::string("cannot transpose the quantized tensor ") + x->name);
    x = ggml_get_rows(ctx, x, ggml_view_1d(ctx, rows, x->ne[1], 0));
  }
  ggml_tensor *view = ggml_transpose(ctx, x);
  // Custom ops run on the CPU backend only; other backends have a fast CONT of their own.
  if (x->type == GGML_TYPE_F32 && x->nb[0] == sizeof(float) && onCpu(m))
    return ggml_map_custom1(ctx, view, copyTransposedF32, GGML_N_TASKS_MAX, nullptr);
  return ggml_cont(ctx, view);
}

}  // namespace

ggml_cgraph *rewriteBackward(const Model &m, ggml_context *ctx, ggml_cgraph *graph, size_t capacity, GraphInputs &in,
                             int64_t N) {
  const int n = ggml_graph_n_nodes(graph);
  ggml_tensor *rows = in.rows;
  // One transposed copy per source: q, k and v (and gate and up) share their input activation.
  std::map<ggml_tensor *, ggml_tensor *> copies;
  auto T = [&](ggml_tensor *x) {
    auto kept = m.transposed.find(x);  // a frozen base matrix transposed once at load (LoRA)
    if (kept != m.transposed.end()) return kept->second;
    auto it = copies.find(x);
    if (it != copies.end()) return it->second;
    return copies[x] = transposed(m, ctx, x, rows);
  };
  for (int i = 0; i < n; i++) {
    ggml_tensor *node = ggml_graph_node(graph, i);
    if (node->op == GGML_OP_SOFT_MAX_BACK) {
      // The allocator may compute SOFT_MAX_BACK in place over its src1 (the softmax output y)
      // when its src0 is a view, and the CPU kernel then overwrites y before reading it. Marking
      // y as an output keeps its memory from being reused (it lives until here anyway).
      ggml_set_output(node->src[1]);
    }
    if (node->op == GGML_OP_GET_ROWS_BACK && m.options.denseEmbeddingGrad && node->src[1] == in.tokens) {
      // d token_embd [d, V] = Σ_n grad[:, n]·onehot(tokens[n])ᵀ = mul_mat(gradᵀ [N, d], onehotᵀ [N, V]).
      const int64_t V = node->ne[1];
      in.embedIndex = ggml_new_tensor_1d(ctx, GGML_TYPE_I64, N);
      in.embedZeros = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 1, N * V);
      ggml_set_input(in.embedIndex);
      ggml_set_input(in.embedZeros);
      ggml_tensor *onehotT = ggml_reshape_2d(ctx, ggml_set_rows(ctx, in.embedZeros, in.pickOnes, in.embedIndex), N, V);
      ggml_tensor *grad = T(node->src[0]);
      node->op = GGML_OP_MUL_MAT;
      node->src[0] = grad;
      node->src[1] = onehotT;
      node->src[2] = nullptr;
      continue;
    }
    if (node->op != GGML_OP_OUT_PROD) continue;
    // out_prod(a, b)[i, j] = Σ_k a[i, k]·b[j, k] = mul_mat(aᵀ, bᵀ)[i, j]; batch dims broadcast alike.
    ggml_tensor *a = T(node->src[0]);
    ggml_tensor *b = T(node->src[1]);
    node->op = GGML_OP_MUL_MAT;
    node->src[0] = a;
    node->src[1] = b;
  }
  // Expanding each node in the old order pulls the new copies in ahead of their consumers.
  ggml_cgraph *out = ggml_new_graph_custom(ctx, capacity, false);
  for (int i = 0; i < n; i++) ggml_build_forward_expand(out, ggml_graph_node(graph, i));
  return out;
}

void checkSupported(ggml_backend_t backend, ggml_cgraph *graph) {
  for (int i = 0; i < ggml_graph_n_nodes(graph); i++) {
    ggml_tensor *node = ggml_graph_node(graph, i);
    if (node->op == GGML_OP_NONE || ggml_backend_supports_op(backend, node)) continue;
    std::string what = std::string("the ") + ggml_backend_name(backend) + " backend does not support " +
                       ggml_op_desc(node) + " (node " + std::to_string(i) + " \"" + node->name + "\", " +
                       ggml_type_name(node->type) + " [" + std::to_string(node->ne[0]) + ", " +
                       std::to_string(node->ne[1]) + ", " + std::to_string(node->ne[2]) + ", " +
                       std::to_string(node->ne[3]) + "]";
    for (int s = 0; s < GGML_MAX_SRC && node->src[s]; s++)
      what += std::string(s == 0 ? " from " : ", ") + ggml_type_name(node->src[s]->type) + " \"" + node->src[s]->name + "\"";
    throw Error(what + ")");
  }
}

std::string probeUnsupportedOp(const std::string &backendsDir, bool gpu) {
  if (ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU) == nullptr)
    ggml_backend_load_all_from_path(backendsDir.c_str());
  BackendPtr backend(ggml_backend_init_by_type(gpu ? GGML_BACKEND_DEVICE_TYPE_GPU : GGML_BACKEND_DEVICE_TYPE_CPU, nullptr));
  if (!backend) throw Error(std::string("no ggml ") + (gpu ? "GPU" : "CPU") + " backend found in " + backendsDir);
  ContextPtr ctx = metadataContext(8, ggml_graph_overhead());
  // The CPU lacks MUL_MAT(F32, F16); CUDA lacks OUT_PROD with an F16 first operand.
  ggml_tensor *a = ggml_new_tensor_2d(ctx.get(), gpu ? GGML_TYPE_F16 : GGML_TYPE_F32, 32, 4);
  ggml_tensor *b = ggml_new_tensor_2d(ctx.get(), gpu ? GGML_TYPE_F32 : GGML_TYPE_F16, gpu ? 8 : 32, 4);
  ggml_set_name(a, "a");
  ggml_set_name(b, "b");
  ggml_tensor *y = gpu ? ggml_out_prod(ctx.get(), a, b) : ggml_mul_mat(ctx.get(), a, b);
  ggml_set_name(y, "y");
  ggml_cgraph *g = ggml_new_graph(ctx.get());
  ggml_build_forward_expand(g, y);
  try {
    checkSupported(backend.get(), g);
  } catch (const Error &e) {
    return e.what();
  }
  return "";
}

}  // namespace wr1
