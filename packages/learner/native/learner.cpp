// Native part of @workflow-r1/learner: a llama-architecture graph on ggml with autodiff, AdamW and
// GGUF parameter I/O. Everything else (validation, micro-batching, schedules, Effect glue) is
// TypeScript. Inputs are validated in TypeScript first; the checks here turn what slips through
// into JS exceptions instead of ggml aborts.
#include <napi.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml.h"
#include "gguf.h"

#ifndef WR1_GGML_VERSION
#define WR1_GGML_VERSION "unknown"
#endif
#ifndef WR1_LAST_OP
#define WR1_LAST_OP "unknown"
#endif

namespace {

using Error = std::runtime_error;

// The ABI check: headers and libraries must come from the same ggml (it has no stable ABI).
std::string abiProblem() {
  const std::string version = ggml_version();
  if (version != WR1_GGML_VERSION)
    return "ggml version " + version + " does not match the headers the addon was built with (" WR1_GGML_VERSION ")";
  const size_t expected = sizeof(struct ggml_tensor) + 4 * sizeof(void *);
  if (ggml_tensor_overhead() != expected)
    return "ggml_tensor_overhead() = " + std::to_string(ggml_tensor_overhead()) + ", expected " +
           std::to_string(expected) + " (struct layout differs)";
  const char *last = ggml_op_name((enum ggml_op)(GGML_OP_COUNT - 1));
  if (last == nullptr || std::string(last) != WR1_LAST_OP)
    return std::string("last ggml op is ") + (last ? last : "(null)") + ", expected " WR1_LAST_OP;
  return "";
}

bool gBackendsLoaded = false;

struct Hparams {
  std::string arch;
  int64_t vocab = 0, dim = 0, layers = 0, heads = 0, kvHeads = 0, ffn = 0, context = 0, headDim = 0, nRot = 0;
  float eps = 1e-5f, freqBase = 10000.0f, freqScale = 1.0f;
  int ropeMode = 0;
};

struct LoraPair {
  ggml_tensor *a = nullptr, *b = nullptr;
};

struct Layer {
  ggml_tensor *attnNorm, *wq, *wk, *wv, *wo, *bq, *bk, *bv, *bo, *ffnNorm, *wg, *wu, *wd;
};

uint32_t kvU32(gguf_context *g, const std::string &key, int64_t fallback, bool required) {
  const int64_t id = gguf_find_key(g, key.c_str());
  if (id < 0) {
    if (required) throw Error("GGUF metadata lacks " + key);
    return (uint32_t)fallback;
  }
  switch (gguf_get_kv_type(g, id)) {
  case GGUF_TYPE_UINT32: return gguf_get_val_u32(g, id);
  case GGUF_TYPE_INT32: return (uint32_t)gguf_get_val_i32(g, id);
  case GGUF_TYPE_UINT64: return (uint32_t)gguf_get_val_u64(g, id);
  case GGUF_TYPE_ARRAY: return (uint32_t)gguf_get_arr_n(g, id);
  default: throw Error("GGUF metadata " + key + " has an unexpected type");
  }
}

float kvF32(gguf_context *g, const std::string &key, float fallback) {
  const int64_t id = gguf_find_key(g, key.c_str());
  if (id < 0) return fallback;
  if (gguf_get_kv_type(g, id) == GGUF_TYPE_FLOAT32) return gguf_get_val_f32(g, id);
  if (gguf_get_kv_type(g, id) == GGUF_TYPE_FLOAT64) return (float)gguf_get_val_f64(g, id);
  throw Error("GGUF metadata " + key + " has an unexpected type");
}

void readTensorData(FILE *f, size_t offset, ggml_tensor *t) {
  std::vector<uint8_t> buf(ggml_nbytes(t));
  if (fseek(f, (long)offset, SEEK_SET) != 0 || fread(buf.data(), 1, buf.size(), f) != buf.size())
    throw Error(std::string("could not read tensor data of ") + t->name);
  ggml_backend_tensor_set(t, buf.data(), 0, buf.size());
}

class Model {
public:
  Hparams hp;
  ggml_backend_t backend = nullptr;
  gguf_context *meta = nullptr;   // the base file's metadata (copied into saved GGUFs)
  ggml_context *wctx = nullptr;   // base weights
  ggml_backend_buffer_t wbuf = nullptr;
  ggml_context *tctx = nullptr;   // LoRA tensors, gradient accumulators, AdamW moments
  ggml_backend_buffer_t tbuf = nullptr;
  ggml_backend_buffer_t gbuf = nullptr;  // gradient accumulators only (cleared after a step)
  ggml_context *gctx = nullptr;
  std::vector<std::string> order;  // base tensor names in file order
  std::map<std::string, ggml_tensor *> tensors;
  ggml_tensor *tokEmbd = nullptr, *outNorm = nullptr, *output = nullptr;
  std::vector<Layer> blocks;
  bool lora = false;
  int loraRank = 0;
  float loraAlpha = 0;
  std::map<ggml_tensor *, LoraPair> loras;
  std::vector<ggml_tensor *> params;          // trainable tensors
  std::map<ggml_tensor *, ggml_tensor *> grad, adamM, adamV;
  int64_t step = 0;
  int threads = 2;

  ~Model() { release(); }

  void release() {
    if (gbuf) ggml_backend_buffer_free(gbuf), gbuf = nullptr;
    if (gctx) ggml_free(gctx), gctx = nullptr;
    if (tbuf) ggml_backend_buffer_free(tbuf), tbuf = nullptr;
    if (tctx) ggml_free(tctx), tctx = nullptr;
    if (wbuf) ggml_backend_buffer_free(wbuf), wbuf = nullptr;
    if (wctx) ggml_free(wctx), wctx = nullptr;
    if (meta) gguf_free(meta), meta = nullptr;
    if (backend) ggml_backend_free(backend), backend = nullptr;
  }

  ggml_tensor *find(const std::string &name, bool required) {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      if (required) throw Error("GGUF lacks tensor " + name);
      return nullptr;
    }
    return it->second;
  }

  void load(const std::string &path, const std::string &backendsDir, int nThreads, bool useGpu) {
    threads = nThreads;
    if (!gBackendsLoaded) {
      if (ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU) == nullptr)
        ggml_backend_load_all_from_path(backendsDir.c_str());
      gBackendsLoaded = true;
    }
    if (useGpu) {
      backend = ggml_backend_init_by_type(GGML_BACKEND_DEVICE_TYPE_GPU, nullptr);
      if (!backend) throw Error("no GPU backend could be started (was the addon built with WORKFLOW_R1_CUDA=1?)");
    } else {
      backend = ggml_backend_init_by_type(GGML_BACKEND_DEVICE_TYPE_CPU, nullptr);
      if (!backend) throw Error("no ggml CPU backend found in " + backendsDir);
      auto reg = ggml_backend_dev_backend_reg(ggml_backend_get_device(backend));
      auto setThreads = (ggml_backend_set_n_threads_t)ggml_backend_reg_get_proc_address(reg, "ggml_backend_set_n_threads");
      if (setThreads) setThreads(backend, nThreads);
    }

    gguf_init_params ip = {/*no_alloc*/ true, /*ctx*/ &wctx};
    meta = gguf_init_from_file(path.c_str(), ip);
    if (!meta) throw Error("could not read GGUF " + path);
    const int64_t archId = gguf_find_key(meta, "general.architecture");
    if (archId < 0) throw Error("GGUF lacks general.architecture");
    hp.arch = gguf_get_val_str(meta, archId);
    if (hp.arch == "llama") hp.ropeMode = 0;
    else if (hp.arch == "qwen2") hp.ropeMode = GGML_ROPE_TYPE_NEOX;
    else throw Error("unsupported architecture " + hp.arch + " (supported: llama, qwen2)");
    const std::string a = hp.arch + ".";
    hp.dim = kvU32(meta, a + "embedding_length", 0, true);
    hp.layers = kvU32(meta, a + "block_count", 0, true);
    hp.heads = kvU32(meta, a + "attention.head_count", 0, true);
    hp.kvHeads = kvU32(meta, a + "attention.head_count_kv", hp.heads, false);
    hp.ffn = kvU32(meta, a + "feed_forward_length", 0, true);
    hp.context = kvU32(meta, a + "context_length", 0, true);
    hp.headDim = hp.dim / hp.heads;
    hp.nRot = kvU32(meta, a + "rope.dimension_count", hp.headDim, false);
    hp.eps = kvF32(meta, a + "attention.layer_norm_rms_epsilon", 1e-5f);
    hp.freqBase = kvF32(meta, a + "rope.freq_base", 10000.0f);
    const float ropeScale = kvF32(meta, a + "rope.scaling.factor", 0.0f);
    hp.freqScale = ropeScale > 0 ? 1.0f / ropeScale : 1.0f;

    wbuf = ggml_backend_alloc_ctx_tensors(wctx, backend);
    if (!wbuf) throw Error("could not allocate the model weights");
    FILE *f = fopen(path.c_str(), "rb");
    if (!f) throw Error("could not open " + path);
    const size_t dataOffset = gguf_get_data_offset(meta);
    try {
      for (int64_t i = 0; i < gguf_get_n_tensors(meta); i++) {
        const char *name = gguf_get_tensor_name(meta, i);
        ggml_tensor *t = ggml_get_tensor(wctx, name);
        readTensorData(f, dataOffset + gguf_get_tensor_offset(meta, i), t);
        tensors[name] = t;
        order.push_back(name);
      }
    } catch (...) {
      fclose(f);
      throw;
    }
    fclose(f);
    hp.vocab = find("token_embd.weight", true)->ne[1];
    tokEmbd = find("token_embd.weight", true);
    outNorm = find("output_norm.weight", true);
    output = find("output.weight", false);
    for (int64_t l = 0; l < hp.layers; l++) {
      const std::string p = "blk." + std::to_string(l) + ".";
      Layer b{};
      b.attnNorm = find(p + "attn_norm.weight", true);
      b.wq = find(p + "attn_q.weight", true);
      b.wk = find(p + "attn_k.weight", true);
      b.wv = find(p + "attn_v.weight", true);
      b.wo = find(p + "attn_output.weight", true);
      b.bq = find(p + "attn_q.bias", false);
      b.bk = find(p + "attn_k.bias", false);
      b.bv = find(p + "attn_v.bias", false);
      b.bo = find(p + "attn_output.bias", false);
      b.ffnNorm = find(p + "ffn_norm.weight", true);
      b.wg = find(p + "ffn_gate.weight", true);
      b.wu = find(p + "ffn_up.weight", true);
      b.wd = find(p + "ffn_down.weight", true);
      blocks.push_back(b);
    }
  }

  // Trainable tensors, their gradient accumulators and AdamW moments.
  void setupTraining(int rank, float alpha, const std::vector<std::string> &targets, uint32_t seed) {
    lora = rank > 0;
    if (!lora) {
      for (auto &name : order) {
        ggml_tensor *t = tensors[name];
        if (t->type != GGML_TYPE_F32)
          throw Error("full fine-tuning needs F32 weights, but " + name + " is " + ggml_type_name(t->type) +
                      " (use LoRA for F16/quantized models)");
        params.push_back(t);
      }
    } else {
      loraRank = rank;
      loraAlpha = alpha;
      const size_t n = targets.size() * hp.layers * 2 + 8;
      ggml_init_params cp = {ggml_tensor_overhead() * n, nullptr, true};
      tctx = ggml_init(cp);
      for (int64_t l = 0; l < hp.layers; l++) {
        for (auto &target : targets) {
          const std::string base = "blk." + std::to_string(l) + "." + target + ".weight";
          ggml_tensor *w = find(base, true);
          LoraPair p;
          p.a = ggml_new_tensor_2d(tctx, GGML_TYPE_F32, w->ne[0], rank);
          p.b = ggml_new_tensor_2d(tctx, GGML_TYPE_F32, rank, w->ne[1]);
          ggml_set_name(p.a, (base + ".lora_a").c_str());
          ggml_set_name(p.b, (base + ".lora_b").c_str());
          loras[w] = p;
          params.push_back(p.a);
          params.push_back(p.b);
          tensors[p.a->name] = p.a;
          tensors[p.b->name] = p.b;
        }
      }
      tbuf = ggml_backend_alloc_ctx_tensors(tctx, backend);
      if (!tbuf) throw Error("could not allocate LoRA tensors");
      // A ~ N(0, 1/in), B = 0: the adapter starts as the identity, like PEFT's default.
      std::mt19937 rng(seed);
      for (auto &kv : loras) {
        std::normal_distribution<float> dist(0.0f, 1.0f / std::sqrt((float)kv.second.a->ne[0]));
        std::vector<float> a(ggml_nelements(kv.second.a));
        for (auto &x : a) x = dist(rng);
        ggml_backend_tensor_set(kv.second.a, a.data(), 0, a.size() * sizeof(float));
        std::vector<float> z(ggml_nelements(kv.second.b), 0.0f);
        ggml_backend_tensor_set(kv.second.b, z.data(), 0, z.size() * sizeof(float));
      }
    }
    for (auto *p : params) ggml_set_param(p);
    ggml_init_params gp = {ggml_tensor_overhead() * (params.size() * 3 + 4), nullptr, true};
    gctx = ggml_init(gp);
    for (auto *p : params) {
      grad[p] = ggml_dup_tensor(gctx, p);
      adamM[p] = ggml_dup_tensor(gctx, p);
      adamV[p] = ggml_dup_tensor(gctx, p);
      ggml_format_name(grad[p], "%s.grad", p->name);
      ggml_format_name(adamM[p], "%s.adam_m", p->name);
      ggml_format_name(adamV[p], "%s.adam_v", p->name);
    }
    gbuf = ggml_backend_alloc_ctx_tensors(gctx, backend);
    if (!gbuf) throw Error("could not allocate gradients and optimizer moments");
    ggml_backend_buffer_clear(gbuf, 0);
  }

  ggml_tensor *mm(ggml_context *ctx, ggml_tensor *w, ggml_tensor *x) {
    ggml_tensor *y = ggml_mul_mat(ctx, w, x);
    auto it = loras.find(w);
    if (it != loras.end()) {
      ggml_tensor *ab = ggml_mul_mat(ctx, it->second.b, ggml_mul_mat(ctx, it->second.a, x));
      y = ggml_add(ctx, y, ggml_scale(ctx, ab, loraAlpha / (float)loraRank));
    }
    return y;
  }

  struct Inputs {
    ggml_tensor *tokens, *pos, *mask, *targets, *coef;
  };

  // Per-position log-probability of the next token, [1, L*B]; position t of sequence b predicts
  // tokens[b*L + t + 1]. The max used to stabilise log-sum-exp is cast through I32 so autodiff
  // treats it as a constant.
  ggml_tensor *buildLogprobs(ggml_context *ctx, int64_t L, int64_t B, Inputs &in) {
    const int64_t N = L * B, d = hp.dim, hd = hp.headDim, H = hp.heads, Hkv = hp.kvHeads;
    in.tokens = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, N);
    in.pos = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, L);
    in.mask = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, L, L);
    in.targets = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, N);
    for (auto *t : {in.tokens, in.pos, in.mask, in.targets}) ggml_set_input(t);
    ggml_tensor *x = ggml_get_rows(ctx, tokEmbd, in.tokens);  // [d, N]
    const float kqScale = 1.0f / std::sqrt((float)hd);
    for (auto &b : blocks) {
      ggml_tensor *cur = ggml_mul(ctx, ggml_rms_norm(ctx, x, hp.eps), b.attnNorm);
      ggml_tensor *q = mm(ctx, b.wq, cur), *k = mm(ctx, b.wk, cur), *v = mm(ctx, b.wv, cur);
      if (b.bq) q = ggml_add(ctx, q, b.bq);
      if (b.bk) k = ggml_add(ctx, k, b.bk);
      if (b.bv) v = ggml_add(ctx, v, b.bv);
      q = ggml_reshape_4d(ctx, q, hd, H, L, B);
      k = ggml_reshape_4d(ctx, k, hd, Hkv, L, B);
      v = ggml_reshape_4d(ctx, v, hd, Hkv, L, B);
      q = ggml_rope_ext(ctx, q, in.pos, nullptr, hp.nRot, hp.ropeMode, hp.context, hp.freqBase, hp.freqScale, 0.0f,
                        1.0f, 32.0f, 1.0f);
      k = ggml_rope_ext(ctx, k, in.pos, nullptr, hp.nRot, hp.ropeMode, hp.context, hp.freqBase, hp.freqScale, 0.0f,
                        1.0f, 32.0f, 1.0f);
      // Heads and sequences share one dimension (head h of sequence s at h + H*s): mul_mat's
      // broadcast then maps query head h to KV head h / (H/Hkv) of the same sequence (GQA).
      q = ggml_reshape_3d(ctx, ggml_cont(ctx, ggml_permute(ctx, q, 0, 2, 1, 3)), hd, L, H * B);
      k = ggml_reshape_3d(ctx, ggml_cont(ctx, ggml_permute(ctx, k, 0, 2, 1, 3)), hd, L, Hkv * B);
      ggml_tensor *vt = ggml_reshape_3d(ctx, ggml_cont(ctx, ggml_permute(ctx, v, 1, 2, 0, 3)), L, hd, Hkv * B);
      ggml_tensor *kq = ggml_mul_mat(ctx, k, q);  // [L_k, L_q, H*B]
      kq = ggml_soft_max_ext(ctx, kq, in.mask, kqScale, 0.0f);
      ggml_tensor *o = ggml_mul_mat(ctx, vt, kq);  // [hd, L, H*B]
      o = ggml_cont(ctx, ggml_permute(ctx, ggml_reshape_4d(ctx, o, hd, L, H, B), 0, 2, 1, 3));  // [hd, H, L, B]
      o = mm(ctx, b.wo, ggml_reshape_2d(ctx, o, d, N));
      if (b.bo) o = ggml_add(ctx, o, b.bo);
      x = ggml_add(ctx, x, o);
      cur = ggml_mul(ctx, ggml_rms_norm(ctx, x, hp.eps), b.ffnNorm);
      ggml_tensor *h = ggml_mul(ctx, ggml_silu(ctx, mm(ctx, b.wg, cur)), mm(ctx, b.wu, cur));
      x = ggml_add(ctx, x, mm(ctx, b.wd, h));
    }
    x = ggml_mul(ctx, ggml_rms_norm(ctx, x, hp.eps), outNorm);
    ggml_tensor *logits = mm(ctx, output ? output : tokEmbd, x);  // [V, N]
    const int64_t V = hp.vocab;
    ggml_tensor *m = ggml_pool_1d(ctx, logits, GGML_OP_POOL_MAX, (int)V, (int)V, 0);  // [1, N]
    m = ggml_cast(ctx, ggml_cast(ctx, m, GGML_TYPE_I32), GGML_TYPE_F32);
    ggml_tensor *xm = ggml_add(ctx, logits, ggml_neg(ctx, m));
    ggml_tensor *lse = ggml_log(ctx, ggml_sum_rows(ctx, ggml_exp(ctx, xm)));  // [1, N]
    ggml_tensor *picked = ggml_get_rows(ctx, ggml_reshape_2d(ctx, xm, 1, V * N), in.targets);  // [1, N]
    ggml_tensor *logp = ggml_add(ctx, ggml_reshape_2d(ctx, picked, 1, N), ggml_neg(ctx, lse));
    ggml_set_output(logp);
    return logp;
  }

  void setInputs(const Inputs &in, const int32_t *tokens, int64_t L, int64_t B) {
    const int64_t N = L * B, V = hp.vocab;
    std::vector<int32_t> pos(L);
    for (int64_t i = 0; i < L; i++) pos[i] = (int32_t)i;
    std::vector<float> mask(L * L);
    for (int64_t qi = 0; qi < L; qi++)
      for (int64_t ki = 0; ki < L; ki++) mask[qi * L + ki] = ki <= qi ? 0.0f : -INFINITY;
    std::vector<int32_t> targets(N);
    for (int64_t b = 0; b < B; b++)
      for (int64_t t = 0; t < L; t++) {
        const int64_t i = b * L + t;
        const int32_t next = t + 1 < L ? tokens[i + 1] : 0;
        targets[i] = (int32_t)(i * V + next);
      }
    ggml_backend_tensor_set(in.tokens, tokens, 0, N * sizeof(int32_t));
    ggml_backend_tensor_set(in.pos, pos.data(), 0, pos.size() * sizeof(int32_t));
    ggml_backend_tensor_set(in.mask, mask.data(), 0, mask.size() * sizeof(float));
    ggml_backend_tensor_set(in.targets, targets.data(), 0, targets.size() * sizeof(int32_t));
  }

  size_t graphSize() const { return 2048 + (size_t)hp.layers * 1024 + params.size() * 8; }

  struct Compute {
    ggml_context *ctx = nullptr;
    ggml_gallocr_t alloc = nullptr;
    ~Compute() {
      if (alloc) ggml_gallocr_free(alloc);
      if (ctx) ggml_free(ctx);
    }
  };

  void checkTokens(const int32_t *tokens, int64_t n) {
    for (int64_t i = 0; i < n; i++)
      if (tokens[i] < 0 || tokens[i] >= hp.vocab)
        throw Error("token id " + std::to_string(tokens[i]) + " is outside the vocabulary [0, " +
                    std::to_string(hp.vocab) + ")");
  }

  // Forward only, or forward + backward accumulating into the gradient buffers when coef != null.
  std::vector<float> run(const int32_t *tokens, int64_t L, int64_t B, const float *coef) {
    if (L < 1 || B < 1) throw Error("empty batch");
    if (L > hp.context) throw Error("sequence length " + std::to_string(L) + " exceeds the context " + std::to_string(hp.context));
    checkTokens(tokens, L * B);
    const int64_t N = L * B;
    Compute c;
    const size_t size = graphSize() * (coef ? 3 : 1);
    ggml_init_params cp = {ggml_tensor_overhead() * size * 2 + ggml_graph_overhead_custom(size, coef != nullptr), nullptr, true};
    c.ctx = ggml_init(cp);
    Inputs in{};
    ggml_tensor *logp = buildLogprobs(c.ctx, L, B, in);
    ggml_cgraph *gf = ggml_new_graph_custom(c.ctx, size, coef != nullptr);
    ggml_tensor *lossGradAcc = nullptr;
    if (coef) {
      in.coef = ggml_new_tensor_2d(c.ctx, GGML_TYPE_F32, 1, N);
      ggml_set_input(in.coef);
      ggml_tensor *loss = ggml_sum(c.ctx, ggml_mul(c.ctx, logp, in.coef));
      ggml_set_loss(loss);
      ggml_build_forward_expand(gf, loss);
      std::vector<ggml_tensor *> accs(ggml_graph_n_nodes(gf), nullptr);
      for (int i = 0; i < ggml_graph_n_nodes(gf); i++) {
        auto it = grad.find(ggml_graph_node(gf, i));
        if (it != grad.end()) accs[i] = it->second;
      }
      ggml_build_backward_expand(c.ctx, gf, accs.data());
      lossGradAcc = ggml_graph_get_grad_acc(gf, loss);
      ggml_set_input(lossGradAcc);
    } else {
      ggml_build_forward_expand(gf, logp);
    }
    c.alloc = ggml_gallocr_new(ggml_backend_get_default_buffer_type(backend));
    if (!ggml_gallocr_alloc_graph(c.alloc, gf)) throw Error("could not allocate the compute graph (batch too large?)");
    setInputs(in, tokens, L, B);
    if (coef) {
      ggml_backend_tensor_set(in.coef, coef, 0, N * sizeof(float));
      const float one = 1.0f;
      ggml_backend_tensor_set(lossGradAcc, &one, 0, sizeof(float));
    }
    if (ggml_backend_graph_compute(backend, gf) != GGML_STATUS_SUCCESS) throw Error("graph computation failed");
    std::vector<float> out(N);
    ggml_backend_tensor_get(logp, out.data(), 0, N * sizeof(float));
    return out;
  }

  // Squared global norm of the accumulated gradient.
  double gradNormSq() {
    double s = 0;
    if (ggml_backend_buffer_is_host(gbuf)) {
      for (auto *p : params) {
        const float *g = (const float *)grad[p]->data;
        for (int64_t i = 0, n = ggml_nelements(p); i < n; i++) s += (double)g[i] * g[i];
      }
      return s;
    }
    for (auto *p : params) {
      std::vector<float> g(ggml_nelements(p));
      ggml_backend_tensor_get(grad[p], g.data(), 0, g.size() * sizeof(float));
      for (float x : g) s += (double)x * x;
    }
    return s;
  }

  // Clip to maxNorm (≤ 0: no clipping), AdamW, zero the gradients. Returns the norm before clipping.
  double adamw(float lr, float beta1, float beta2, float eps, float wd, float maxNorm) {
    const double norm = std::sqrt(gradNormSq());
    if (!std::isfinite(norm)) {
      ggml_backend_buffer_clear(gbuf, 0);
      throw Error("the gradient is not finite (norm " + std::to_string(norm) + "); gradients were discarded");
    }
    const float clip = maxNorm > 0 && norm > maxNorm ? (float)(maxNorm / norm) : 1.0f;
    step += 1;
    const float beta1h = 1.0f / (1.0f - std::pow(beta1, (float)step)), beta2h = 1.0f / (1.0f - std::pow(beta2, (float)step));
    if (ggml_backend_buffer_is_host(gbuf)) {
      // Host memory: one loop per tensor, the same update as ggml_opt_step_adamw, without a graph
      // (a graph of 2 ops per tensor pays a thread barrier per op).
      const float keep = 1.0f - lr * wd;
      for (auto *p : params) {
        float *w = (float *)p->data, *g = (float *)grad[p]->data, *m = (float *)adamM[p]->data, *v = (float *)adamV[p]->data;
        for (int64_t i = 0, n = ggml_nelements(p); i < n; i++) {
          const float gi = g[i] * clip;
          m[i] = m[i] * beta1 + gi * (1.0f - beta1);
          v[i] = v[i] * beta2 + gi * gi * (1.0f - beta2);
          const float mh = m[i] * beta1h, vh = std::sqrt(v[i] * beta2h) + eps;
          w[i] = w[i] * keep - lr * mh / vh;
        }
      }
      ggml_backend_buffer_clear(gbuf, 0);
      return norm;
    }
    Compute c;
    const size_t size = params.size() * 4 + 16;
    ggml_init_params cp = {ggml_tensor_overhead() * size + ggml_graph_overhead_custom(size, false), nullptr, true};
    c.ctx = ggml_init(cp);
    ggml_tensor *hyper = ggml_new_tensor_1d(c.ctx, GGML_TYPE_F32, 7);
    ggml_set_input(hyper);
    ggml_cgraph *gf = ggml_new_graph_custom(c.ctx, size, false);
    for (auto *p : params) {
      ggml_tensor *g = ggml_scale(c.ctx, grad[p], clip);
      ggml_build_forward_expand(gf, ggml_opt_step_adamw(c.ctx, p, g, adamM[p], adamV[p], hyper));
    }
    c.alloc = ggml_gallocr_new(ggml_backend_get_default_buffer_type(backend));
    if (!ggml_gallocr_alloc_graph(c.alloc, gf)) throw Error("could not allocate the optimizer graph");
    const float hv[7] = {lr, beta1, beta2, eps, wd, beta1h, beta2h};
    ggml_backend_tensor_set(hyper, hv, 0, sizeof(hv));
    if (ggml_backend_graph_compute(backend, gf) != GGML_STATUS_SUCCESS) throw Error("optimizer step failed");
    ggml_backend_buffer_clear(gbuf, 0);
    return norm;
  }

  std::vector<uint8_t> hostData(ggml_tensor *t) {
    std::vector<uint8_t> buf(ggml_nbytes(t));
    ggml_backend_tensor_get(t, buf.data(), 0, buf.size());
    return buf;
  }

  // Writes through a temporary file and a rename, so a reader never sees half a GGUF.
  void writeGguf(gguf_context *out, const std::string &path) {
    const std::string tmp = path + ".tmp";
    if (!gguf_write_to_file(out, tmp.c_str(), false)) throw Error("could not write " + tmp);
    if (std::rename(tmp.c_str(), path.c_str()) != 0) throw Error("could not rename " + tmp + " to " + path);
  }

  void addTensors(gguf_context *out, ggml_context *hctx, const std::vector<ggml_tensor *> &list,
                  std::vector<std::vector<uint8_t>> &keep, const char *suffix = nullptr) {
    for (auto *t : list) {
      ggml_tensor *copy = ggml_dup_tensor(hctx, t);
      if (suffix) ggml_format_name(copy, "%s%s", t->name, suffix);
      else ggml_set_name(copy, t->name);
      keep.push_back(hostData(t));
      gguf_add_tensor(out, copy);
      gguf_set_tensor_data(out, copy->name, keep.back().data());
    }
  }

  void saveFull(const std::string &path) {
    gguf_context *out = gguf_init_empty();
    gguf_set_kv(out, meta);
    ggml_init_params hp2 = {ggml_tensor_overhead() * (order.size() + 2), nullptr, true};
    ggml_context *hctx = ggml_init(hp2);
    std::vector<std::vector<uint8_t>> keep;
    keep.reserve(order.size());
    try {
      if (!lora) {
        std::vector<ggml_tensor *> list;
        for (auto &n : order) list.push_back(tensors[n]);
        addTensors(out, hctx, list, keep);
      } else {
        // Merge W + (alpha/r)·B·A into F32 copies of the targeted weights.
        for (auto &n : order) {
          ggml_tensor *t = tensors[n];
          auto it = loras.find(t);
          ggml_tensor *copy = ggml_dup_tensor(hctx, t);
          ggml_set_name(copy, t->name);
          if (it == loras.end()) {
            keep.push_back(hostData(t));
          } else {
            if (t->type != GGML_TYPE_F32) throw Error("merging LoRA into a " + std::string(ggml_type_name(t->type)) + " weight is not supported; save format \"lora\"");
            std::vector<float> w(ggml_nelements(t)), a(ggml_nelements(it->second.a)), b(ggml_nelements(it->second.b));
            ggml_backend_tensor_get(t, w.data(), 0, w.size() * 4);
            ggml_backend_tensor_get(it->second.a, a.data(), 0, a.size() * 4);
            ggml_backend_tensor_get(it->second.b, b.data(), 0, b.size() * 4);
            const int64_t in = t->ne[0], outn = t->ne[1], r = loraRank;
            const float s = loraAlpha / r;
            for (int64_t o = 0; o < outn; o++)
              for (int64_t i = 0; i < in; i++) {
                float acc = 0;
                for (int64_t k = 0; k < r; k++) acc += b[o * r + k] * a[k * in + i];
                w[o * in + i] += s * acc;
              }
            keep.emplace_back((uint8_t *)w.data(), (uint8_t *)w.data() + w.size() * 4);
          }
          gguf_add_tensor(out, copy);
          gguf_set_tensor_data(out, copy->name, keep.back().data());
        }
      }
      writeGguf(out, path);
    } catch (...) {
      gguf_free(out);
      ggml_free(hctx);
      throw;
    }
    gguf_free(out);
    ggml_free(hctx);
  }

  void saveLora(const std::string &path) {
    if (!lora) throw Error("format \"lora\" needs a learner in LoRA mode");
    gguf_context *out = gguf_init_empty();
    gguf_set_val_str(out, "general.architecture", hp.arch.c_str());
    gguf_set_val_str(out, "general.type", "adapter");
    gguf_set_val_str(out, "adapter.type", "lora");
    gguf_set_val_f32(out, "adapter.lora.alpha", loraAlpha);
    ggml_init_params hp2 = {ggml_tensor_overhead() * (params.size() + 2), nullptr, true};
    ggml_context *hctx = ggml_init(hp2);
    std::vector<std::vector<uint8_t>> keep;
    keep.reserve(params.size());
    try {
      addTensors(out, hctx, params, keep);
      writeGguf(out, path);
    } catch (...) {
      gguf_free(out);
      ggml_free(hctx);
      throw;
    }
    gguf_free(out);
    ggml_free(hctx);
  }

  void saveState(const std::string &path) {
    gguf_context *out = gguf_init_empty();
    gguf_set_val_str(out, "general.type", "workflow-r1.learner-state");
    gguf_set_val_str(out, "learner.mode", lora ? "lora" : "full");
    gguf_set_val_u64(out, "learner.step", (uint64_t)step);
    gguf_set_val_u32(out, "learner.lora.rank", (uint32_t)loraRank);
    ggml_init_params hp2 = {ggml_tensor_overhead() * (params.size() * 3 + 2), nullptr, true};
    ggml_context *hctx = ggml_init(hp2);
    std::vector<std::vector<uint8_t>> keep;
    keep.reserve(params.size() * 3);
    try {
      addTensors(out, hctx, params, keep);
      std::vector<ggml_tensor *> ms, vs;
      for (auto *p : params) ms.push_back(adamM[p]), vs.push_back(adamV[p]);
      addTensors(out, hctx, ms, keep);
      addTensors(out, hctx, vs, keep);
      writeGguf(out, path);
    } catch (...) {
      gguf_free(out);
      ggml_free(hctx);
      throw;
    }
    gguf_free(out);
    ggml_free(hctx);
  }

  void loadState(const std::string &path) {
    ggml_context *sctx = nullptr;
    gguf_init_params ip = {false, &sctx};
    gguf_context *in = gguf_init_from_file(path.c_str(), ip);
    if (!in) throw Error("could not read learner state " + path);
    try {
      const int64_t modeId = gguf_find_key(in, "learner.mode");
      const int64_t stepId = gguf_find_key(in, "learner.step");
      if (modeId < 0 || stepId < 0) throw Error(path + " is not a learner state (no learner.mode / learner.step)");
      const std::string mode = gguf_get_val_str(in, modeId);
      if (mode != (lora ? "lora" : "full")) throw Error("state " + path + " is for mode " + mode);
      // Check every tensor first so a mismatch leaves the learner untouched.
      std::vector<std::pair<ggml_tensor *, ggml_tensor *>> pairs;
      for (auto *p : params)
        for (auto *t : {p, adamM[p], adamV[p]}) {
          ggml_tensor *s = ggml_get_tensor(sctx, t->name);
          if (!s) throw Error("state " + path + " lacks tensor " + t->name);
          if (!ggml_are_same_shape(s, t) || s->type != t->type) throw Error(std::string("state tensor ") + t->name + " has another shape or type");
          pairs.emplace_back(t, s);
        }
      for (auto &pr : pairs) ggml_backend_tensor_set(pr.first, pr.second->data, 0, ggml_nbytes(pr.first));
      step = (int64_t)gguf_get_val_u64(in, stepId);
      ggml_backend_buffer_clear(gbuf, 0);
    } catch (...) {
      gguf_free(in);
      ggml_free(sctx);
      throw;
    }
    gguf_free(in);
    ggml_free(sctx);
  }

  ggml_tensor *element(const std::string &name, int64_t index, bool gradient) {
    ggml_tensor *t = find(name, false);
    if (!t) throw Error("no tensor named " + name);
    if (gradient) {
      auto it = grad.find(t);
      if (it == grad.end()) throw Error(name + " is not trainable");
      t = it->second;
    }
    if (t->type != GGML_TYPE_F32) throw Error(name + " is not F32");
    if (index < 0 || index >= ggml_nelements(t)) throw Error("index out of range for " + name);
    return t;
  }
};

// Runs one learner operation on libuv's thread pool and settles a promise; the TypeScript side
// serialises operations, so a Model is never used by two threads at once.
class Job : public Napi::AsyncWorker {
public:
  Job(Napi::Env env, std::function<void(Job &)> work, std::function<Napi::Value(Napi::Env, Job &)> done)
      : Napi::AsyncWorker(env, "workflow-r1-learner"), deferred(Napi::Promise::Deferred::New(env)), work(std::move(work)),
        done(std::move(done)) {}
  void Execute() override {
    try {
      work(*this);
    } catch (const std::exception &e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::HandleScope scope(Env());
    deferred.Resolve(done(Env(), *this));
  }
  void OnError(const Napi::Error &e) override { deferred.Reject(e.Value()); }
  Napi::Promise::Deferred deferred;
  std::vector<float> floats;
  double number = 0;

private:
  std::function<void(Job &)> work;
  std::function<Napi::Value(Napi::Env, Job &)> done;
};

class Native : public Napi::ObjectWrap<Native> {
public:
  static Napi::Object Init(Napi::Env env, Napi::Object exports) {
    Napi::Function f = DefineClass(
        env, "NativeLearner",
        {InstanceMethod("info", &Native::Info), InstanceMethod("forward", &Native::Forward),
         InstanceMethod("backward", &Native::Backward), InstanceMethod("gradNorm", &Native::GradNorm),
         InstanceMethod("step", &Native::Step), InstanceMethod("zeroGrad", &Native::ZeroGrad),
         InstanceMethod("save", &Native::Save), InstanceMethod("saveState", &Native::SaveState),
         InstanceMethod("loadState", &Native::LoadState), InstanceMethod("getParameter", &Native::GetParameter),
         InstanceMethod("setParameter", &Native::SetParameter), InstanceMethod("gradient", &Native::Gradient),
         InstanceMethod("parameterNames", &Native::ParameterNames), InstanceMethod("free", &Native::Free)});
    exports.Set("NativeLearner", f);
    exports.Set("abiProblem", Napi::Function::New(env, [](const Napi::CallbackInfo &info) {
                  return Napi::String::New(info.Env(), abiProblem());
                }));
    exports.Set("ggmlVersion", Napi::Function::New(env, [](const Napi::CallbackInfo &info) {
                  return Napi::String::New(info.Env(), ggml_version());
                }));
    return exports;
  }

  // new NativeLearner(path, backendsDir, { threads, gpu, loraRank, loraAlpha, loraTargets, seed })
  Native(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Native>(info) {
    Napi::Env env = info.Env();
    guard(env, [&] {
      const std::string problem = abiProblem();
      if (!problem.empty()) throw Error(problem);
      auto opts = info[2].As<Napi::Object>();
      model = new Model();
      try {
        model->load(info[0].As<Napi::String>(), info[1].As<Napi::String>(), opts.Get("threads").As<Napi::Number>().Int32Value(),
                    opts.Get("gpu").As<Napi::Boolean>());
        std::vector<std::string> targets;
        auto arr = opts.Get("loraTargets").As<Napi::Array>();
        for (uint32_t i = 0; i < arr.Length(); i++) targets.push_back(arr.Get(i).As<Napi::String>());
        model->setupTraining(opts.Get("loraRank").As<Napi::Number>().Int32Value(),
                             opts.Get("loraAlpha").As<Napi::Number>().FloatValue(), targets,
                             opts.Get("seed").As<Napi::Number>().Uint32Value());
      } catch (...) {
        delete model;
        model = nullptr;
        throw;
      }
      return env.Undefined();
    });
  }

  ~Native() { delete model; }

private:
  Model *model = nullptr;

  template <typename F> Napi::Value guard(Napi::Env env, F f) {
    try {
      return f();
    } catch (const std::exception &e) {
      Napi::Error::New(env, e.what()).ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }

  Model &live() {
    if (!model) throw Error("the learner was freed");
    return *model;
  }

  Napi::Value Info(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      Model &m = live();
      auto o = Napi::Object::New(info.Env());
      o.Set("architecture", m.hp.arch);
      o.Set("vocab", (double)m.hp.vocab);
      o.Set("dim", (double)m.hp.dim);
      o.Set("layers", (double)m.hp.layers);
      o.Set("heads", (double)m.hp.heads);
      o.Set("kvHeads", (double)m.hp.kvHeads);
      o.Set("context", (double)m.hp.context);
      o.Set("step", (double)m.step);
      double n = 0;
      for (auto *p : m.params) n += (double)ggml_nelements(p);
      o.Set("trainableParameters", n);
      o.Set("backend", ggml_backend_name(m.backend));
      return o;
    });
  }

  static Napi::Value floatsOf(Napi::Env env, Job &job) {
    auto arr = Napi::Float32Array::New(env, job.floats.size());
    std::memcpy(arr.Data(), job.floats.data(), job.floats.size() * sizeof(float));
    return arr;
  }

  Napi::Value queue(Napi::Env env, std::function<void(Job &)> work, std::function<Napi::Value(Napi::Env, Job &)> done) {
    auto *job = new Job(env, std::move(work), std::move(done));
    auto promise = job->deferred.Promise();
    job->Queue();
    return promise;
  }

  // forward(tokens Int32Array [B*L], L, B) → Promise<Float32Array [B*L]>; entry b*L+t = log p(tokens[b*L+t+1]).
  Napi::Value Forward(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      auto tokens = info[0].As<Napi::Int32Array>();
      const int64_t L = info[1].As<Napi::Number>().Int64Value(), B = info[2].As<Napi::Number>().Int64Value();
      if ((int64_t)tokens.ElementLength() != L * B) throw Error("tokens length is not L*B");
      Model *m = &live();
      std::vector<int32_t> t(tokens.Data(), tokens.Data() + tokens.ElementLength());
      return queue(info.Env(), [m, t, L, B](Job &job) { job.floats = m->run(t.data(), L, B, nullptr); }, floatsOf);
    });
  }

  // backward(tokens, L, B, coefficients Float32Array [B*L]) → Promise<Float32Array> (the logprobs).
  Napi::Value Backward(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      auto tokens = info[0].As<Napi::Int32Array>();
      const int64_t L = info[1].As<Napi::Number>().Int64Value(), B = info[2].As<Napi::Number>().Int64Value();
      auto coef = info[3].As<Napi::Float32Array>();
      if ((int64_t)tokens.ElementLength() != L * B || (int64_t)coef.ElementLength() != L * B)
        throw Error("tokens / coefficients length is not L*B");
      for (size_t i = 0; i < coef.ElementLength(); i++)
        if (!std::isfinite(coef[i])) throw Error("coefficient " + std::to_string(i) + " is not finite");
      Model *m = &live();
      std::vector<int32_t> t(tokens.Data(), tokens.Data() + tokens.ElementLength());
      std::vector<float> c(coef.Data(), coef.Data() + coef.ElementLength());
      return queue(info.Env(), [m, t, c, L, B](Job &job) { job.floats = m->run(t.data(), L, B, c.data()); }, floatsOf);
    });
  }

  Napi::Value GradNorm(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), std::sqrt(live().gradNormSq())); });
  }

  // step(lr, beta1, beta2, eps, weightDecay, maxGradNorm) → Promise<grad norm before clipping>
  Napi::Value Step(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      std::vector<float> h;
      for (int i = 0; i < 6; i++) h.push_back(info[i].As<Napi::Number>().FloatValue());
      Model *m = &live();
      return queue(
          info.Env(), [m, h](Job &job) { job.number = m->adamw(h[0], h[1], h[2], h[3], h[4], h[5]); },
          [](Napi::Env env, Job &job) -> Napi::Value { return Napi::Number::New(env, job.number); });
    });
  }

  Napi::Value ZeroGrad(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      ggml_backend_buffer_clear(live().gbuf, 0);
      return info.Env().Undefined();
    });
  }

  Napi::Value Save(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      const std::string path = info[0].As<Napi::String>(), format = info[1].As<Napi::String>();
      if (format == "lora") live().saveLora(path);
      else live().saveFull(path);
      return info.Env().Undefined();
    });
  }

  Napi::Value SaveState(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      live().saveState(info[0].As<Napi::String>());
      return info.Env().Undefined();
    });
  }

  Napi::Value LoadState(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      live().loadState(info[0].As<Napi::String>());
      return info.Env().Undefined();
    });
  }

  Napi::Value GetParameter(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      const int64_t idx = info[1].As<Napi::Number>().Int64Value();
      ggml_tensor *t = live().element(info[0].As<Napi::String>(), idx, false);
      float v;
      ggml_backend_tensor_get(t, &v, idx * sizeof(float), sizeof(float));
      return Napi::Number::New(info.Env(), v);
    });
  }

  Napi::Value SetParameter(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      const int64_t idx = info[1].As<Napi::Number>().Int64Value();
      ggml_tensor *t = live().element(info[0].As<Napi::String>(), idx, false);
      const float v = info[2].As<Napi::Number>().FloatValue();
      ggml_backend_tensor_set(t, &v, idx * sizeof(float), sizeof(float));
      return info.Env().Undefined();
    });
  }

  Napi::Value Gradient(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      const int64_t idx = info[1].As<Napi::Number>().Int64Value();
      ggml_tensor *t = live().element(info[0].As<Napi::String>(), idx, true);
      float v;
      ggml_backend_tensor_get(t, &v, idx * sizeof(float), sizeof(float));
      return Napi::Number::New(info.Env(), v);
    });
  }

  // Trainable tensors: [name, elementCount][]
  Napi::Value ParameterNames(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      Model &m = live();
      auto arr = Napi::Array::New(info.Env(), m.params.size());
      for (size_t i = 0; i < m.params.size(); i++) {
        auto pair = Napi::Array::New(info.Env(), 2);
        pair.Set((uint32_t)0, std::string(m.params[i]->name));
        pair.Set((uint32_t)1, (double)ggml_nelements(m.params[i]));
        arr.Set((uint32_t)i, pair);
      }
      return arr;
    });
  }

  Napi::Value Free(const Napi::CallbackInfo &info) {
    delete model;
    model = nullptr;
    return info.Env().Undefined();
  }
};

Napi::Object InitAll(Napi::Env env, Napi::Object exports) { return Native::Init(env, exports); }

}  // namespace

NODE_API_MODULE(learner, InitAll)
