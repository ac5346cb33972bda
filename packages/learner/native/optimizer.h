// Global gradient norm, clipping and AdamW. On a device (GPU) backend: two graphs built once,
// and the only host round trip per step is reading the norm (4 bytes); in host memory (CPU): one
// vectorized pass per tensor.
#pragma once

#include "model.h"

namespace wr1 {

struct AdamWSettings {
  float lr, beta1, beta2, eps, weightDecay, maxGradNorm;  // maxGradNorm ≤ 0: no clipping
};

class Optimizer {
public:
  // WORKFLOW_R1_OPTIMIZER_GRAPH=1 at construction forces the graph path on the CPU too (tests).
  explicit Optimizer(Model &model);
  // Squared global norm of the accumulated gradient.
  double gradNormSq();
  // Clips, applies AdamW, zeroes the gradients; returns the norm before clipping. A non-finite
  // gradient is discarded with an error and the weights stay as they were.
  double step(const AdamWSettings &s);

private:
  bool onHost() const;
  void build();
  Model &model_;
  bool forceGraph_ = false;
  ContextPtr ctx_;
  GallocrPtr normAlloc_, stepAlloc_;
  ggml_cgraph *normGraph_ = nullptr, *stepGraph_ = nullptr;
  ggml_tensor *normSq_ = nullptr, *hyper_ = nullptr, *clip_ = nullptr;
};

}  // namespace wr1
