// Compiled graphs, kept per shape: building a graph and differentiating it happen once per (rows,
// length, forward or training, with or without the LoRA adapter), not on every call. All shapes share one work buffer, which only
// grows: a new shape costs a re-plan of the buffer's layout, not a fresh allocation whose pages
// fault in during the first computation (the learner sees a new shape on most RL batches).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model.h"

namespace wr1 {

struct CompiledGraph {
  int64_t length = 0, rows = 0;
  bool training = false;
  bool base = false;  // forward of the base model alone (LoRA terms left out)
  ContextPtr ctx;
  ggml_cgraph *graph = nullptr;
  size_t bytes = 0;  // the work buffer this shape needs
  GraphInputs in;
  ggml_tensor *logp = nullptr;
  ggml_tensor *lossGrad = nullptr;  // d loss / d loss = 1, set before each run
  // Training graphs split after the log-probabilities: the forward part can run first (its
  // activations stay in the work buffer) and the backward part later, once the coefficients are known.
  ggml_cgraph *forwardPart = nullptr, *backwardPart = nullptr;
  uint64_t lastUse = 0;
};

// Memory the learner holds on its backend, in bytes.
struct MemoryReport {
  size_t weights = 0, trainable = 0, gradients = 0, optimizer = 0, transposed = 0;
  size_t compute = 0;          // the largest work buffer a graph was laid out in
  int64_t computeTokens = 0;   // the tokens (L*B) of that graph
};

// Time per op type, filled while profiling is on (each node computed on its own: slower overall,
// but shows where the time goes).
struct OpTime {
  double seconds = 0;
  int64_t count = 0;
};

class GraphCache {
public:
  void setProfiling(bool on) { profiling_ = on; }
  // Per op type (e.g. MUL_MAT, SOFT_MAX_BACK) since profiling was switched on; clears the tally.
  std::map<std::string, OpTime> takeProfile();
  GraphCache(Model &model, size_t capacity);
  // Log-probabilities [L*B]; with coefficients, also accumulates the gradient of Σ c·logp.
  // `segments` [L*B] names the packed sequence of each token within its row (padding: any id of its own).
  // `base` (forward only): the base model's, without the LoRA adapter (the same graph without LoRA).
  std::vector<float> run(const int32_t *tokens, const int32_t *segments, int64_t L, int64_t B, const float *coef,
                         bool base = false);
  MemoryReport memory() const;
  // Compiles the graph for this shape and grows the shared work buffer to fit it, without
  // computing: the work buffer this shape needs.
  size_t reserve(int64_t L, int64_t B, bool training);
  // The forward half of the training graph; its activations are kept for backwardKept until any
  // other computation or a weight change.
  std::vector<float> forwardKept(const int32_t *tokens, const int32_t *segments, int64_t L, int64_t B);
  // The backward half after forwardKept (same shape, same weights), accumulating Σ c·logp's gradient.
  void backwardKept(const float *coef, int64_t L, int64_t B);
  int64_t reusedForwards() const { return reusedForwards_; }

private:
  // Rows and row length a graph can be built for (at least one of each, rows within the context).
  void checkShape(int64_t L, int64_t B) const;
  CompiledGraph &get(int64_t L, int64_t B, bool training, bool base = false);
  // Lays `g` out in the shared work buffer (unless it is the graph laid out last).
  void activate(CompiledGraph &g);
  std::unique_ptr<CompiledGraph> compile(int64_t L, int64_t B, bool training, bool base);
  void setInputs(CompiledGraph &g, const int32_t *tokens, const int32_t *segments, const float *coef);
  Model &model_;
  size_t capacity_;
  uint64_t clock_ = 0;
  size_t peakCompute_ = 0;
  int64_t peakTokens_ = 0;
  std::vector<std::unique_ptr<CompiledGraph>> graphs_;
  GallocrPtr shared_;   // the work buffer every shape is laid out in
  GallocrPtr measure_;  // plans without allocating, to size each shape
  CompiledGraph *active_ = nullptr;  // the graph laid out in shared_ now
  bool profiling_ = false;
  CompiledGraph *kept_ = nullptr;  // the graph whose forward half ran last, if still valid
  uint64_t keptVersion_ = 0;
  int64_t reusedForwards_ = 0;
  void compute(ggml_cgraph *graph);
  std::map<std::string, OpTime> profile_;
  void computeProfiled(ggml_cgraph *graph);
};

}  // namespace wr1
