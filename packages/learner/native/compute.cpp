#include "compute.h"

#include <chrono>
#include <cmath>
#include <string>

#include "graph.h"

namespace wr1 {

namespace {
size_t graphCapacity(const Model &m, bool training) {
  const size_t forward = 2048 + (size_t)m.hp.layers * 1024 + m.params.size() * 8;
  return training ? forward * 4 : forward;
}
}  // namespace

std::unique_ptr<CompiledGraph> GraphCache::compile(int64_t L, int64_t B, bool training, bool base) {
  Model &m = model_;
  if (training) m.requireTrainable("training");
  auto g = std::make_unique<CompiledGraph>();
  g->length = L;
  g->rows = B;
  g->training = training;
  g->base = base;
  g->in.adapter = !base;
  const size_t capacity = graphCapacity(m, training);
  // Room for the forward graph with gradients, the rewritten graph, and their tensors.
  g->ctx = metadataContext(capacity * 3, ggml_graph_overhead_custom(capacity, true) + 3 * ggml_graph_overhead_custom(capacity, false));
  ggml_context *ctx = g->ctx.get();
  g->logp = buildLogprobs(m, ctx, L, B, g->in, training);
  if (!training) {
    g->graph = ggml_new_graph_custom(ctx, capacity, false);
    ggml_build_forward_expand(g->graph, g->logp);
  } else {
    const int64_t N = L * B;
    g->in.coef = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 1, N);
    g->in.rows = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, m.maxRows > 0 ? m.maxRows : 1);
    ggml_set_input(g->in.coef);
    ggml_set_input(g->in.rows);
    ggml_tensor *loss = ggml_sum(ctx, ggml_mul(ctx, g->logp, g->in.coef));
    ggml_set_loss(loss);
    ggml_cgraph *withGrads = ggml_new_graph_custom(ctx, capacity, true);
    ggml_build_forward_expand(withGrads, loss);
    // Gradients accumulate in place into the persistent buffers across calls until a step.
    std::vector<ggml_tensor *> accs(ggml_graph_n_nodes(withGrads), nullptr);
    for (int i = 0; i < ggml_graph_n_nodes(withGrads); i++) {
      auto it = m.grad.find(ggml_graph_node(withGrads, i));
      if (it != m.grad.end()) accs[i] = it->second;
    }
    ggml_build_backward_expand(ctx, withGrads, accs.data());
    g->lossGrad = ggml_graph_get_grad_acc(withGrads, loss);
    ggml_set_input(g->lossGrad);
    g->graph = rewriteBackward(m, ctx, withGrads, capacity, g->in, L * B);
    const int n = ggml_graph_n_nodes(g->graph);
    int split = -1;
    for (int i = 0; i < n && split < 0; i++)
      if (ggml_graph_node(g->graph, i) == g->logp) split = i + 1;
    if (split < 0) throw Error("internal: the log-probabilities are not a node of the training graph");
    g->forwardPart = ggml_new_graph_custom(ctx, capacity, false);
    g->backwardPart = ggml_new_graph_custom(ctx, capacity, false);
    for (int i = 0; i < n; i++) ggml_graph_add_node(i < split ? g->forwardPart : g->backwardPart, ggml_graph_node(g->graph, i));
  }
  checkSupported(m.backend.get(), g->graph);
  ggml_gallocr_reserve_n_size(measure_.get(), g->graph, nullptr, nullptr, &g->bytes);
  return g;
}

GraphCache::GraphCache(Model &model, size_t capacity)
    : model_(model), capacity_(capacity < 1 ? 1 : capacity),
      shared_(ggml_gallocr_new(ggml_backend_get_default_buffer_type(model.backend.get()))),
      measure_(ggml_gallocr_new(ggml_backend_get_default_buffer_type(model.backend.get()))) {}

void GraphCache::activate(CompiledGraph &g) {
  if (active_ == &g) return;
  // Every tensor of the graph's own context lives in the work buffer (or views it, or views
  // weights and gradients): forget the addresses of its last layout, so that the allocator lays
  // it out again instead of taking the tensors as allocated elsewhere.
  for (ggml_tensor *t = ggml_get_first_tensor(g.ctx.get()); t != nullptr; t = ggml_get_next_tensor(g.ctx.get(), t)) {
    t->data = nullptr;
    t->buffer = nullptr;
  }
  active_ = nullptr;
  if (!ggml_gallocr_alloc_graph(shared_.get(), g.graph)) {
    // A failed reserve leaves the allocator with this shape's plan and no buffer, which a later
    // shape of the same topology would be laid out on: start again from an empty allocator.
    shared_.reset(ggml_gallocr_new(ggml_backend_get_default_buffer_type(model_.backend.get())));
    throw Error("could not allocate the compute graph for " + std::to_string(g.rows) + " × " + std::to_string(g.length) +
                " tokens (" + std::to_string(g.bytes) + " bytes) on " + ggml_backend_name(model_.backend.get()) +
                " (lower microBatchTokens)");
  }
  active_ = &g;
  if (g.bytes > peakCompute_) peakCompute_ = g.bytes, peakTokens_ = g.length * g.rows;
}

void GraphCache::checkShape(int64_t L, int64_t B) const {
  if (L < 1 || B < 1) throw Error("empty batch");
  if (L > model_.hp.context)
    throw Error("sequence length " + std::to_string(L) + " exceeds the context " + std::to_string(model_.hp.context));
}

CompiledGraph &GraphCache::get(int64_t L, int64_t B, bool training, bool base) {
  clock_++;
  base = base && model_.lora();  // without an adapter the base graph is the forward graph
  for (auto &g : graphs_)
    if (g->length == L && g->rows == B && g->training == training && g->base == base) {
      g->lastUse = clock_;
      return *g;
    }
  if (graphs_.size() >= capacity_) {  // evict the least recently used shape
    size_t oldest = 0;
    for (size_t i = 1; i < graphs_.size(); i++)
      if (graphs_[i]->lastUse < graphs_[oldest]->lastUse) oldest = i;
    if (graphs_[oldest].get() == kept_) kept_ = nullptr;
    if (graphs_[oldest].get() == active_) active_ = nullptr;
    graphs_.erase(graphs_.begin() + (long)oldest);
  }
  graphs_.push_back(compile(L, B, training, base));
  graphs_.back()->lastUse = clock_;
  return *graphs_.back();
}

void GraphCache::setInputs(CompiledGraph &g, const int32_t *tokens, const int32_t *segments, const float *coef) {
  const int64_t L = g.length, B = g.rows, N = L * B, V = model_.hp.vocab;
  std::vector<int32_t> positions(N);
  std::vector<float> mask((size_t)L * L * B);
  for (int64_t r = 0; r < B; r++) {
    const int32_t *seg = segments + r * L;
    int64_t start = 0;
    for (int64_t t = 0; t < L; t++) {
      if (t > 0 && seg[t] != seg[t - 1]) start = t;
      positions[r * L + t] = (int32_t)(t - start);
      float *row = mask.data() + (r * L + t) * L;  // query t of row r
      for (int64_t k = 0; k < L; k++) row[k] = k <= t && k >= start ? 0.0f : -INFINITY;
    }
  }
  ggml_backend_tensor_set(g.in.tokens, tokens, 0, N * sizeof(int32_t));
  ggml_backend_tensor_set(g.in.positions, positions.data(), 0, N * sizeof(int32_t));
  ggml_backend_tensor_set(g.in.mask, mask.data(), 0, mask.size() * sizeof(float));
  // Flat index of each position's next token in the [V, N] logits (the last position of a row
  // predicts token 0: its log-probability is never read).
  auto next = [&](int64_t i) { return (i + 1) % L != 0 ? tokens[i + 1] : 0; };
  if (!g.training) {
    std::vector<int32_t> pick(N);
    for (int64_t i = 0; i < N; i++) pick[i] = (int32_t)(i * V + next(i));
    ggml_backend_tensor_set(g.in.pick, pick.data(), 0, N * sizeof(int32_t));
    return;
  }
  std::vector<int64_t> pick(N);
  for (int64_t i = 0; i < N; i++) pick[i] = i * V + next(i);
  ggml_backend_tensor_set(g.in.pick, pick.data(), 0, N * sizeof(int64_t));
  std::vector<float> ones(N, 1.0f);
  ggml_backend_tensor_set(g.in.pickOnes, ones.data(), 0, N * sizeof(float));
  ggml_backend_tensor_memset(g.in.pickZeros, 0, 0, ggml_nbytes(g.in.pickZeros));
  if (coef != nullptr) ggml_backend_tensor_set(g.in.coef, coef, 0, N * sizeof(float));
  if (g.in.embedIndex != nullptr) {
    std::vector<int64_t> index(N);
    for (int64_t i = 0; i < N; i++) index[i] = (int64_t)tokens[i] * N + i;
    ggml_backend_tensor_set(g.in.embedIndex, index.data(), 0, N * sizeof(int64_t));
    ggml_backend_tensor_memset(g.in.embedZeros, 0, 0, ggml_nbytes(g.in.embedZeros));
  }
  if (g.in.rows->buffer != nullptr) {  // only graphs over quantized weights use it
    // Inputs are set before every run: the allocator may lend their memory out in between.
    std::vector<int32_t> rows(g.in.rows->ne[0]);
    for (size_t i = 0; i < rows.size(); i++) rows[i] = (int32_t)i;
    ggml_backend_tensor_set(g.in.rows, rows.data(), 0, rows.size() * sizeof(int32_t));
  }
  const float one = 1.0f;
  ggml_backend_tensor_set(g.lossGrad, &one, 0, sizeof(float));
}

void GraphCache::compute(ggml_cgraph *graph) {
  if (profiling_) computeProfiled(graph);
  else if (ggml_backend_graph_compute(model_.backend.get(), graph) != GGML_STATUS_SUCCESS)
    throw Error("graph computation failed");
}

std::vector<float> GraphCache::run(const int32_t *tokens, const int32_t *segments, int64_t L, int64_t B,
                                   const float *coef, bool base) {
  checkShape(L, B);
  model_.checkTokens(tokens, L * B);
  if (coef != nullptr) model_.requireTrainable("backward");
  if (coef != nullptr && base) throw Error("internal: the base model's graph has no backward");
  kept_ = nullptr;  // any computation may overwrite kept activations (they share the work buffer)
  CompiledGraph &g = get(L, B, coef != nullptr, base);
  activate(g);
  setInputs(g, tokens, segments, coef);
  compute(g.graph);
  std::vector<float> out(L * B);
  ggml_backend_tensor_get(g.logp, out.data(), 0, out.size() * sizeof(float));
  return out;
}

std::vector<float> GraphCache::forwardKept(const int32_t *tokens, const int32_t *segments, int64_t L, int64_t B) {
  checkShape(L, B);
  model_.checkTokens(tokens, L * B);
  model_.requireTrainable("a kept forward pass (for a backward)");
  kept_ = nullptr;
  CompiledGraph &g = get(L, B, true);
  activate(g);
  setInputs(g, tokens, segments, nullptr);
  compute(g.forwardPart);
  kept_ = &g;
  keptVersion_ = model_.weightsVersion;
  std::vector<float> out(L * B);
  ggml_backend_tensor_get(g.logp, out.data(), 0, out.size() * sizeof(float));
  return out;
}

void GraphCache::backwardKept(const float *coef, int64_t L, int64_t B) {
  model_.requireTrainable("backward");
  if (kept_ == nullptr || kept_->length != L || kept_->rows != B || keptVersion_ != model_.weightsVersion)
    throw Error("no kept forward pass of this shape at the current weights (call forward with keep first)");
  CompiledGraph &g = *kept_;
  kept_ = nullptr;
  ggml_backend_tensor_set(g.in.coef, coef, 0, L * B * sizeof(float));
  const float one = 1.0f;
  ggml_backend_tensor_set(g.lossGrad, &one, 0, sizeof(float));
  compute(g.backwardPart);
  reusedForwards_++;
}

void GraphCache::computeProfiled(ggml_cgraph *graph) {
  ContextPtr ctx = metadataContext(0, ggml_graph_overhead_custom(1, false));
  ggml_cgraph *one = ggml_new_graph_custom(ctx.get(), 1, false);
  for (int i = 0; i < ggml_graph_n_nodes(graph); i++) {
    ggml_tensor *node = ggml_graph_node(graph, i);
    ggml_graph_clear(one);
    ggml_graph_add_node(one, node);
    const auto start = std::chrono::steady_clock::now();
    // graph_compute waits for the backend (a GPU stream included) before returning.
    if (ggml_backend_graph_compute(model_.backend.get(), one) != GGML_STATUS_SUCCESS)
      throw Error("graph computation failed");
    OpTime &t = profile_[ggml_op_desc(node)];
    t.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    t.count++;
  }
}

std::map<std::string, OpTime> GraphCache::takeProfile() {
  std::map<std::string, OpTime> out;
  out.swap(profile_);
  return out;
}

size_t GraphCache::reserve(int64_t L, int64_t B, bool training) {
  checkShape(L, B);
  if (training) model_.requireTrainable("a training graph");
  kept_ = nullptr;  // laying out another graph may overwrite kept activations
  CompiledGraph &g = get(L, B, training);
  activate(g);
  return g.bytes;
}

MemoryReport GraphCache::memory() const {
  MemoryReport r;
  const Model &m = model_;
  r.weights = ggml_backend_buffer_get_size(m.wbuf.get());
  r.trainable = m.lbuf ? ggml_backend_buffer_get_size(m.lbuf.get()) : 0;
  r.gradients = m.gbuf ? ggml_backend_buffer_get_size(m.gbuf.get()) : 0;  // none when frozen
  r.optimizer = m.mbuf ? ggml_backend_buffer_get_size(m.mbuf.get()) : 0;
  r.transposed = m.xbuf ? ggml_backend_buffer_get_size(m.xbuf.get()) : 0;
  r.compute = peakCompute_;
  r.computeTokens = peakTokens_;
  return r;
}

}  // namespace wr1
