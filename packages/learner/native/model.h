// The model the learner trains: hyperparameters and weights read from a GGUF, the trainable
// tensors (every weight, dequantized to F32 at load, or LoRA pairs over a frozen base of any type),
// their gradient accumulators and AdamW moments, all in buffers of one ggml backend (CPU or GPU).
// A frozen model (inference only) holds the F32 weights alone.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "handles.h"

namespace wr1 {

struct Hparams {
  std::string arch;
  int64_t vocab = 0, dim = 0, layers = 0, heads = 0, kvHeads = 0, ffn = 0, context = 0, headDim = 0, nRot = 0;
  float eps = 1e-5f, freqBase = 10000.0f, freqScale = 1.0f;
};

struct LoraPair {
  ggml_tensor *a = nullptr, *b = nullptr;
};

struct Layer {
  ggml_tensor *attnNorm, *wq, *wk, *wv, *wo, *bq, *bk, *bv, *bo, *ffnNorm, *wg, *wu, *wd;
};

// Inputs of a compiled graph, set before each computation.
struct GraphInputs {
  ggml_tensor *tokens = nullptr;     // I32 [L*B]
  ggml_tensor *positions = nullptr;  // I32 [L*B], restarting at 0 for each packed sequence
  ggml_tensor *mask = nullptr;       // F32 [L, L, 1, B], 0 or -inf: causal within one sequence
  ggml_tensor *pick = nullptr;       // flat index t*V + next token: I32 (forward) or I64 (training)
  ggml_tensor *pickOnes = nullptr;   // F32 [1, L*B], training only
  ggml_tensor *pickZeros = nullptr;  // F32 [1, V*L*B], training only: zeroed before each run
  ggml_tensor *coef = nullptr;       // F32 [1, L*B], training only
  ggml_tensor *rows = nullptr;       // I32 [max rows] = 0, 1, 2, …: dequantizes frozen weights
  ggml_tensor *embedIndex = nullptr; // I64 [L*B] = token*N + position: one-hot of the tokens (dense embedding gradient)
  ggml_tensor *embedZeros = nullptr; // F32 [1, N*V], zeroed before each run
  // Set before building, not an input tensor: false leaves the LoRA terms out of every product
  // (the base model's log-probabilities).
  bool adapter = true;
};

// How matrix products of trainable F32 weights run: in F32, or with the weights cast to F16.
enum class Precision { F32, F16 };

struct ModelOptions {
  int threads = 1;
  bool gpu = false;
  int loraRank = 0;
  float loraAlpha = 0;
  std::vector<std::string> loraTargets;
  uint32_t seed = 0;
  Precision precision = Precision::F32;
  size_t graphCacheSize = 4;
  // The token embedding's gradient as a one-hot matrix product instead of GET_ROWS_BACK (which
  // CUDA computes in V·N·d steps). Default: on for GPU backends; WORKFLOW_R1_DENSE_EMBEDDING_GRAD=1|0
  // overrides (tests use it to check the dense path on the CPU).
  bool denseEmbeddingGrad = false;
  // LoRA: keep a transposed copy of every frozen base matrix (quantized ones as F16), made once, so
  // input gradients need no per-call transpose / dequantization (memory: about one more base in F16).
  bool transposedBase = false;
  // Inference only (a reference policy): F32 weights like full fine-tuning, no trainable tensors,
  // gradients or moments; training graphs, steps and saves are refused.
  bool frozen = false;
};

class Model;
class GraphCache;
class Optimizer;

// One GGUF architecture: how to build its transformer block. The table is architecture.cpp.
struct Architecture {
  const char *name;
  int ropeMode;
  ggml_tensor *(*block)(const Model &, ggml_context *, const Layer &, ggml_tensor *x, const GraphInputs &, int64_t L,
                        int64_t B);
};
const Architecture &findArchitecture(const std::string &name);

class Model {
public:
  Model(const std::string &path, const std::string &backendsDir, const ModelOptions &options);
  ~Model();

  Hparams hp;
  const Architecture *arch = nullptr;
  ModelOptions options;
  BackendPtr backend;
  ContextPtr wctx;  // base weights (metadata), data in wbuf
  GgufPtr meta;     // the base file's metadata, copied into saved GGUFs
  BufferPtr wbuf;
  ContextPtr lctx;  // LoRA tensors
  BufferPtr lbuf;
  ContextPtr gctx;  // gradient accumulators (gbuf: cleared after each step)
  BufferPtr gbuf;
  ContextPtr mctx;  // AdamW moments (mbuf: kept across steps)
  BufferPtr mbuf;

  std::vector<std::string> order;  // base tensor names in file order
  std::map<std::string, ggml_tensor *> tensors;
  ggml_tensor *tokEmbd = nullptr, *outNorm = nullptr, *output = nullptr;
  std::vector<Layer> blocks;
  std::map<const ggml_tensor *, LoraPair> loras;
  std::vector<ggml_tensor *> params;  // trainable tensors
  std::map<const ggml_tensor *, ggml_tensor *> grad, adamM, adamV;
  std::map<const ggml_tensor *, ggml_tensor *> transposed;  // frozen base matrix → its transpose (LoRA)
  ContextPtr xctx;  // transposed copies, data in xbuf
  BufferPtr xbuf;
  int64_t maxRows = 0;  // longest output dimension of any weight (size of GraphInputs::rows)
  int64_t step = 0;
  // Bumped whenever trainable weights change (optimizer step, state load, test writes): a kept
  // forward pass is only reused for a backward at the same version.
  uint64_t weightsVersion = 0;
  // Some base tensor was stored in another type and dequantized to F32 at load (full and frozen).
  bool dequantized = false;

  bool lora() const { return options.loraRank > 0; }
  bool frozen() const { return options.frozen; }
  // "full", "lora" or "frozen".
  const char *mode() const { return frozen() ? "frozen" : lora() ? "lora" : "full"; }
  // Throws the frozen learner's error for `operation` (e.g. "backward") unless the model trains.
  void requireTrainable(const std::string &operation) const;
  ggml_tensor *find(const std::string &name, bool required) const;
  // y = W·x, plus the LoRA update when W is adapted and `adapter` is set; F16 products when
  // precision asks for them.
  ggml_tensor *matmul(ggml_context *ctx, ggml_tensor *w, ggml_tensor *x, bool adapter) const;
  void checkTokens(const int32_t *tokens, int64_t n) const;
  ggml_tensor *element(const std::string &name, int64_t index, bool gradient);
  void zeroGrad();

  GraphCache &graphs() { return *graphs_; }
  Optimizer &optimizer() { return *optimizer_; }

private:
  void loadWeights(const std::string &path);
  void setupTraining();
  void buildTransposedBase();
  std::unique_ptr<GraphCache> graphs_;
  std::unique_ptr<Optimizer> optimizer_;
};

}  // namespace wr1
