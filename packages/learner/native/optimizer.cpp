#include "optimizer.h"

#include <cmath>
#include <cstdlib>
#include <string>

namespace wr1 {

void Optimizer::build() {
  Model &m = model_;
  const size_t n = m.params.size();
  const size_t capacity = n * 8 + 16;
  ctx_ = metadataContext(capacity * 2, 2 * ggml_graph_overhead_custom(capacity, false));
  ggml_context *ctx = ctx_.get();
  // Σ_p Σ g²: one reduction per tensor, summed into a scalar.
  for (auto *p : m.params) {
    ggml_tensor *s = ggml_sum(ctx, ggml_sqr(ctx, m.grad.at(p)));
    normSq_ = normSq_ ? ggml_add(ctx, normSq_, s) : s;
  }
  ggml_set_output(normSq_);
  normGraph_ = ggml_new_graph_custom(ctx, capacity, false);
  ggml_build_forward_expand(normGraph_, normSq_);

  hyper_ = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, 7);  // lr, β1, β2, eps, wd, bias corrections
  clip_ = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, 1);   // factor that scales the gradient to the clip norm
  ggml_set_input(hyper_);
  ggml_set_input(clip_);
  stepGraph_ = ggml_new_graph_custom(ctx, capacity, false);
  for (auto *p : m.params) {
    ggml_tensor *g = ggml_mul(ctx, m.grad.at(p), clip_);
    ggml_build_forward_expand(stepGraph_, ggml_opt_step_adamw(ctx, p, g, m.adamM.at(p), m.adamV.at(p), hyper_));
  }
  ggml_backend_buffer_type_t type = ggml_backend_get_default_buffer_type(m.backend.get());
  normAlloc_.reset(ggml_gallocr_new(type));
  stepAlloc_.reset(ggml_gallocr_new(type));
  if (!ggml_gallocr_alloc_graph(normAlloc_.get(), normGraph_) || !ggml_gallocr_alloc_graph(stepAlloc_.get(), stepGraph_))
    throw Error("could not allocate the optimizer graphs");
}

namespace {

// Host-memory (CPU backend) versions: one pass per tensor, written so the compiler vectorizes
// them (independent partial sums; -fno-math-errno lets sqrtf vectorize). A graph of 2–4 ops per
// tensor costs several extra passes over memory and a thread barrier per op.
double hostNormSq(const float *g, int64_t n) {
  float part[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; j++) part[j] += g[i + j] * g[i + j];
  double s = 0;
  for (; i < n; i++) s += (double)g[i] * g[i];
  for (float p : part) s += p;
  return s;
}

void hostAdamW(float *w, const float *g, float *m, float *v, int64_t n, float clip, const float *h) {
  const float lr = h[0], b1 = h[1], b2 = h[2], eps = h[3], keep = 1.0f - h[0] * h[4], b1h = h[5], b2h = h[6];
  for (int64_t i = 0; i < n; i++) {
    const float gi = g[i] * clip;
    const float mi = m[i] * b1 + gi * (1.0f - b1);
    const float vi = v[i] * b2 + gi * gi * (1.0f - b2);
    m[i] = mi;
    v[i] = vi;
    w[i] = w[i] * keep - lr * (mi * b1h) / (std::sqrt(vi * b2h) + eps);
  }
}

}  // namespace

Optimizer::Optimizer(Model &model) : model_(model) {
  const char *force = std::getenv("WORKFLOW_R1_OPTIMIZER_GRAPH");
  forceGraph_ = force != nullptr && std::string(force) == "1";
}

bool Optimizer::onHost() const { return !forceGraph_ && ggml_backend_buffer_is_host(model_.gbuf.get()); }

double Optimizer::gradNormSq() {
  model_.requireTrainable("the gradient norm");
  if (onHost()) {
    double s = 0;
    for (auto *p : model_.params) s += hostNormSq((const float *)model_.grad.at(p)->data, ggml_nelements(p));
    return s;
  }
  if (!ctx_) build();
  if (ggml_backend_graph_compute(model_.backend.get(), normGraph_) != GGML_STATUS_SUCCESS)
    throw Error("gradient norm computation failed");
  float s = 0;
  ggml_backend_tensor_get(normSq_, &s, 0, sizeof(float));
  return s;
}

double Optimizer::step(const AdamWSettings &s) {
  model_.requireTrainable("step");
  const double norm = std::sqrt(gradNormSq());
  if (!std::isfinite(norm)) {
    model_.zeroGrad();
    throw Error("the gradient is not finite (norm " + std::to_string(norm) + "); gradients were discarded");
  }
  const float clip = s.maxGradNorm > 0 && norm > s.maxGradNorm ? (float)(s.maxGradNorm / norm) : 1.0f;
  const int64_t t = model_.step + 1;
  const float hyper[7] = {s.lr,
                          s.beta1,
                          s.beta2,
                          s.eps,
                          s.weightDecay,
                          1.0f / (1.0f - std::pow(s.beta1, (float)t)),
                          1.0f / (1.0f - std::pow(s.beta2, (float)t))};
  if (onHost()) {
    for (auto *p : model_.params)
      hostAdamW((float *)p->data, (const float *)model_.grad.at(p)->data, (float *)model_.adamM.at(p)->data,
                (float *)model_.adamV.at(p)->data, ggml_nelements(p), clip, hyper);
  } else {
    if (!ctx_) build();
    ggml_backend_tensor_set(hyper_, hyper, 0, sizeof(hyper));
    ggml_backend_tensor_set(clip_, &clip, 0, sizeof(float));
    if (ggml_backend_graph_compute(model_.backend.get(), stepGraph_) != GGML_STATUS_SUCCESS)
      throw Error("optimizer step failed");
  }
  model_.step = t;
  model_.weightsVersion++;
  model_.zeroGrad();
  return norm;
}

}  // namespace wr1
