#include "model.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "compute.h"
#include "gguf_io.h"
#include "optimizer.h"

namespace wr1 {

namespace {

bool backendsLoaded = false;

BackendPtr startBackend(const std::string &backendsDir, const ModelOptions &o) {
  if (!backendsLoaded) {
    if (ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU) == nullptr)
      ggml_backend_load_all_from_path(backendsDir.c_str());
    backendsLoaded = true;
  }
  if (o.gpu) {
    // node-llama-cpp may have loaded the backends already, without a GPU one (a CPU policy in the
    // same process): load the GPU library of this directory on its own.
    if (ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_GPU) == nullptr) {
      const std::string cuda = backendsDir + "/libggml-cuda.so";
      if (FILE *f = std::fopen(cuda.c_str(), "rb")) {
        std::fclose(f);
        ggml_backend_load(cuda.c_str());
      }
    }
    BackendPtr gpu(ggml_backend_init_by_type(GGML_BACKEND_DEVICE_TYPE_GPU, nullptr));
    if (!gpu)
      throw Error("no GPU backend could be started from " + backendsDir +
                  " (build the addon with WORKFLOW_R1_CUDA=1 and a libggml-cuda.so for this GPU: "
                  "packages/learner/scripts/build-cuda.sh)");
    return gpu;
  }
  BackendPtr cpu(ggml_backend_init_by_type(GGML_BACKEND_DEVICE_TYPE_CPU, nullptr));
  if (!cpu) throw Error("no ggml CPU backend found in " + backendsDir);
  auto reg = ggml_backend_dev_backend_reg(ggml_backend_get_device(cpu.get()));
  auto setThreads = (ggml_backend_set_n_threads_t)ggml_backend_reg_get_proc_address(reg, "ggml_backend_set_n_threads");
  if (setThreads) setThreads(cpu.get(), o.threads);
  return cpu;
}

}  // namespace

Model::Model(const std::string &path, const std::string &backendsDir, const ModelOptions &o) : options(o) {
  if (o.frozen && o.loraRank > 0)
    throw Error("a frozen learner has no LoRA adapter (a LoRA learner's base log-probabilities leave the adapter out)");
  backend = startBackend(backendsDir, o);
  options.denseEmbeddingGrad = o.gpu;
  if (const char *dense = std::getenv("WORKFLOW_R1_DENSE_EMBEDDING_GRAD")) options.denseEmbeddingGrad = std::string(dense) == "1";
  loadWeights(path);
  setupTraining();
  if (lora() && options.transposedBase) buildTransposedBase();
  graphs_ = std::make_unique<GraphCache>(*this, o.graphCacheSize);
  optimizer_ = std::make_unique<Optimizer>(*this);
}

Model::~Model() {
  // Compiled graphs hold backend buffers: free them before the weights and the backend.
  graphs_.reset();
  optimizer_.reset();
}

ggml_tensor *Model::find(const std::string &name, bool required) const {
  auto it = tensors.find(name);
  if (it == tensors.end()) {
    if (required) throw Error("GGUF lacks tensor " + name);
    return nullptr;
  }
  return it->second;
}

void Model::loadWeights(const std::string &path) {
  ContextPtr fileCtx;  // the tensors as the file stores them
  meta = openGguf(path, fileCtx);
  const int64_t archId = gguf_find_key(meta.get(), "general.architecture");
  if (archId < 0) throw Error("GGUF lacks general.architecture");
  hp.arch = gguf_get_val_str(meta.get(), archId);
  arch = &findArchitecture(hp.arch);
  const std::string a = hp.arch + ".";
  gguf_context *g = meta.get();
  hp.dim = metaU32(g, a + "embedding_length", 0, true);
  hp.layers = metaU32(g, a + "block_count", 0, true);
  hp.heads = metaU32(g, a + "attention.head_count", 0, true);
  hp.kvHeads = metaU32(g, a + "attention.head_count_kv", hp.heads, false);
  hp.ffn = metaU32(g, a + "feed_forward_length", 0, true);
  hp.context = metaU32(g, a + "context_length", 0, true);
  hp.headDim = hp.dim / hp.heads;
  hp.nRot = metaU32(g, a + "rope.dimension_count", hp.headDim, false);
  hp.eps = metaF32(g, a + "attention.layer_norm_rms_epsilon", 1e-5f);
  hp.freqBase = metaF32(g, a + "rope.freq_base", 10000.0f);
  const float ropeScale = metaF32(g, a + "rope.scaling.factor", 0.0f);
  hp.freqScale = ropeScale > 0 ? 1.0f / ropeScale : 1.0f;

  if (lora()) {
    wctx = std::move(fileCtx);  // LoRA keeps the base as it is: F32, F16, BF16 or quantized
  } else {
    // Full fine-tuning (and a frozen reference, so that the two agree exactly) holds every tensor
    // as F32 master weights, whatever the file stores: readTensorData dequantizes while reading.
    const int64_t n = gguf_get_n_tensors(g);
    wctx = metadataContext(n + 1);
    for (int64_t i = 0; i < n; i++) {
      const char *name = gguf_get_tensor_name(g, i);
      const ggml_tensor *stored = ggml_get_tensor(fileCtx.get(), name);
      if (stored->type != GGML_TYPE_F32) {
        if (ggml_get_type_traits(stored->type)->to_float == nullptr)
          throw Error(std::string(frozen() ? "a frozen learner" : "full fine-tuning") +
                      " holds every weight in F32, but tensor " + name + " is " + ggml_type_name(stored->type) +
                      ", which ggml cannot convert to F32");
        dequantized = true;
      }
      ggml_tensor *t = ggml_new_tensor(wctx.get(), GGML_TYPE_F32, GGML_MAX_DIMS, stored->ne);
      ggml_set_name(t, name);
    }
  }
  wbuf.reset(ggml_backend_alloc_ctx_tensors(wctx.get(), backend.get()));
  if (!wbuf) throw Error("could not allocate the model weights on " + std::string(ggml_backend_name(backend.get())));
  readTensorData(path, g, wctx.get());
  for (int64_t i = 0; i < gguf_get_n_tensors(g); i++) {
    const char *name = gguf_get_tensor_name(g, i);
    ggml_tensor *t = ggml_get_tensor(wctx.get(), name);
    tensors[name] = t;
    order.push_back(name);
    if (ggml_n_dims(t) >= 2) maxRows = std::max(maxRows, t->ne[1]);
  }
  tokEmbd = find("token_embd.weight", true);
  hp.vocab = tokEmbd->ne[1];
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

void Model::setupTraining() {
  if (frozen()) return;  // no trainable tensors, gradients or moments
  if (!lora()) {
    for (auto &name : order) params.push_back(tensors[name]);  // all F32 (see loadWeights)
  } else {
    const int rank = options.loraRank;
    lctx = metadataContext(options.loraTargets.size() * hp.layers * 2 + 8);
    for (int64_t l = 0; l < hp.layers; l++) {
      for (auto &target : options.loraTargets) {
        const std::string base = "blk." + std::to_string(l) + "." + target + ".weight";
        ggml_tensor *w = find(base, true);
        LoraPair p;
        p.a = ggml_new_tensor_2d(lctx.get(), GGML_TYPE_F32, w->ne[0], rank);
        p.b = ggml_new_tensor_2d(lctx.get(), GGML_TYPE_F32, rank, w->ne[1]);
        ggml_set_name(p.a, (base + ".lora_a").c_str());
        ggml_set_name(p.b, (base + ".lora_b").c_str());
        loras[w] = p;
        params.push_back(p.a);
        params.push_back(p.b);
        tensors[p.a->name] = p.a;
        tensors[p.b->name] = p.b;
      }
    }
    lbuf.reset(ggml_backend_alloc_ctx_tensors(lctx.get(), backend.get()));
    if (!lbuf) throw Error("could not allocate LoRA tensors");
    // A ~ N(0, 1/in), B = 0: the adapter starts as the identity, like PEFT's default.
    std::mt19937 rng(options.seed);
    for (size_t i = 0; i < params.size(); i += 2) {  // params holds (lora_a, lora_b) pairs
      ggml_tensor *a = params[i], *b = params[i + 1];
      std::normal_distribution<float> dist(0.0f, 1.0f / std::sqrt((float)a->ne[0]));
      std::vector<float> values(ggml_nelements(a));
      for (auto &x : values) x = dist(rng);
      ggml_backend_tensor_set(a, values.data(), 0, values.size() * sizeof(float));
      ggml_backend_tensor_memset(b, 0, 0, ggml_nbytes(b));
    }
  }
  for (auto *p : params) ggml_set_param(p);
  gctx = metadataContext(params.size() + 4);
  mctx = metadataContext(params.size() * 2 + 4);
  for (auto *p : params) {
    grad[p] = ggml_dup_tensor(gctx.get(), p);
    adamM[p] = ggml_dup_tensor(mctx.get(), p);
    adamV[p] = ggml_dup_tensor(mctx.get(), p);
    ggml_format_name(grad[p], "%s.grad", p->name);
    ggml_format_name(adamM[p], "%s.adam_m", p->name);
    ggml_format_name(adamV[p], "%s.adam_v", p->name);
  }
  gbuf.reset(ggml_backend_alloc_ctx_tensors(gctx.get(), backend.get()));
  mbuf.reset(ggml_backend_alloc_ctx_tensors(mctx.get(), backend.get()));
  if (!gbuf || !mbuf) throw Error("could not allocate gradients and optimizer moments");
  ggml_backend_buffer_clear(gbuf.get(), 0);
  ggml_backend_buffer_clear(mbuf.get(), 0);
}

void Model::buildTransposedBase() {
  std::vector<ggml_tensor *> mats;
  for (const Layer &b : blocks)
    for (ggml_tensor *w : {b.wq, b.wk, b.wv, b.wo, b.wg, b.wu, b.wd}) mats.push_back(w);
  mats.push_back(output ? output : tokEmbd);
  xctx = metadataContext(mats.size() + 1);
  for (ggml_tensor *w : mats) {
    // Quantized blocks cannot be transposed: their copy is dequantized to F16.
    const ggml_type type = ggml_is_quantized(w->type) ? GGML_TYPE_F16 : w->type;
    ggml_tensor *t = ggml_new_tensor_2d(xctx.get(), type, w->ne[1], w->ne[0]);
    ggml_format_name(t, "%s.T", w->name);
    transposed[w] = t;
  }
  xbuf.reset(ggml_backend_alloc_ctx_tensors(xctx.get(), backend.get()));
  if (!xbuf) throw Error("could not allocate the transposed base weights (set transposedBase: false to save memory)");
  // One small graph per matrix keeps the temporary buffers to one layer's size.
  std::vector<int32_t> iota(maxRows);
  for (size_t i = 0; i < iota.size(); i++) iota[i] = (int32_t)i;
  for (ggml_tensor *w : mats) {
    ContextPtr ctx = metadataContext(8, ggml_graph_overhead());
    ggml_tensor *src = w;
    ggml_tensor *rows = nullptr;
    if (ggml_is_quantized(w->type)) {
      rows = ggml_new_tensor_1d(ctx.get(), GGML_TYPE_I32, w->ne[1]);
      ggml_set_input(rows);
      src = ggml_get_rows(ctx.get(), w, rows);  // F32 [in, out]
    }
    ggml_tensor *out = ggml_cpy(ctx.get(), ggml_transpose(ctx.get(), src), transposed[w]);
    ggml_cgraph *g = ggml_new_graph(ctx.get());
    ggml_build_forward_expand(g, out);
    GallocrPtr alloc(ggml_gallocr_new(ggml_backend_get_default_buffer_type(backend.get())));
    if (!ggml_gallocr_alloc_graph(alloc.get(), g)) throw Error(std::string("could not transpose ") + w->name);
    if (rows) ggml_backend_tensor_set(rows, iota.data(), 0, w->ne[1] * sizeof(int32_t));
    if (ggml_backend_graph_compute(backend.get(), g) != GGML_STATUS_SUCCESS)
      throw Error(std::string("could not transpose ") + w->name);
  }
}

void Model::requireTrainable(const std::string &operation) const {
  if (frozen())
    throw Error("the learner is frozen (inference only): " + operation +
                " is not available (it has no trainable weights, gradients or optimizer state)");
}

ggml_tensor *Model::matmul(ggml_context *ctx, ggml_tensor *w, ggml_tensor *x, bool adapter) const {
  ggml_tensor *wm = w;
  if (options.precision == Precision::F16 && w->type == GGML_TYPE_F32 && (w->flags & GGML_TENSOR_FLAG_PARAM))
    wm = ggml_cast(ctx, w, GGML_TYPE_F16);
  ggml_tensor *y = ggml_mul_mat(ctx, wm, x);
  auto it = adapter ? loras.find(w) : loras.end();
  if (it != loras.end()) {
    ggml_tensor *ab = ggml_mul_mat(ctx, it->second.b, ggml_mul_mat(ctx, it->second.a, x));
    y = ggml_add(ctx, y, ggml_scale(ctx, ab, options.loraAlpha / (float)options.loraRank));
  }
  return y;
}

void Model::checkTokens(const int32_t *tokens, int64_t n) const {
  for (int64_t i = 0; i < n; i++)
    if (tokens[i] < 0 || tokens[i] >= hp.vocab)
      throw Error("token id " + std::to_string(tokens[i]) + " is outside the vocabulary [0, " + std::to_string(hp.vocab) +
                  ")");
}

ggml_tensor *Model::element(const std::string &name, int64_t index, bool gradient) {
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

void Model::zeroGrad() {
  if (gbuf) ggml_backend_buffer_clear(gbuf.get(), 0);
}

}  // namespace wr1
