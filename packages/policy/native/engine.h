// A continuous-batching decode loop over libllama: every live request gets its next token from one
// llama_decode per step, is sampled in C++ (sampling.h) and checked for end-of-generation tokens,
// stop strings and its token budget; JavaScript sees one call per chunk of steps, not one per
// sequence per token. Requests may join between chunks.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "llama.h"
#include "sampling.h"
#include "workers.h"

namespace wr1 {

using Error = std::runtime_error;

struct EngineOptions {
  std::string backendsDir;
  int32_t contextPerSequence = 2048;
  int32_t sequences = 1;
  int32_t threads = 1;
  int32_t gpuLayers = 0;
  int32_t batchSize = 2048;
  int32_t cacheType = -1;  // a ggml_type for the K and V cache, -1: llama.cpp's default (F16)
  bool flashAttention = false;
  bool unifiedKv = true;
};

struct Request {
  int64_t id = 0;
  int32_t sequence = 0;
  int32_t position = 0;             // where `feed` starts in the sequence
  std::vector<int32_t> feed;        // tokens to evaluate before sampling (at least one)
  SamplingSettings sampling;
  uint64_t seed = 0;
  int32_t maxTokens = 0;
  std::vector<std::string> stops;
  // Scoring instead of sampling (scoreFirst ≥ 0): the log-probability of targets[k] at the row of
  // feed[scoreFirst + k], for every k; nothing is sampled.
  int32_t scoreFirst = -1;
  std::vector<int32_t> targets;
};

struct Result {
  int64_t id = 0;
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;
  std::string finish;  // "eos" | "stop" | "length" | "context" | "scored" | "cancelled"
  std::string stop;    // the stop string that ended it
  int32_t position = 0;  // the sequence's length in the KV cache afterwards
};

class Engine {
public:
  Engine(const std::string &modelPath, const EngineOptions &o);
  ~Engine();
  Engine(const Engine &) = delete;
  Engine &operator=(const Engine &) = delete;

  // Thread-safe: queued until the next run.
  void submit(Request r);
  // Thread-safe: the request ends at the next step with finish "cancelled" (unknown ids are ignored).
  void cancel(int64_t id);
  // Up to `steps` decode steps for every live request; the requests that finished.
  std::vector<Result> run(int32_t steps);
  // Applies a LoRA adapter file at `scale` (an empty path removes it) without reloading the base;
  // no request may be live, and cached sequences must be cleared by the caller.
  void setLora(const std::string &path, float scale);
  // The same from a LoRA adapter GGUF held in memory (`size` bytes at `data`; copied while loading).
  void setLoraBytes(const uint8_t *data, size_t size, float scale);
  // Drops a sequence's cells from the KV cache (no request of it may be live).
  void clear(int32_t sequence);
  int32_t vocab() const { return vocab_; }
  int32_t contextPerSequence() const { return options_.contextPerSequence; }
  int64_t decodes() const { return decodes_; }
  int64_t decodedTokens() const { return decodedTokens_; }

private:
  // Makes `next` (null: none) the context's only adapter and frees the previous one.
  void applyLora(llama_adapter_lora *next, float scale, const std::string &label);
  struct Live {
    Request request;
    size_t fed = 0;  // tokens of request.feed already decoded
    std::mt19937_64 rng;
    Result result;
    std::string tail;  // recent generated text, for stop strings
    size_t longestStop = 0;
    int32_t batchIndex = -1;  // logits row in this step's batch, -1: nothing to sample this step
    std::vector<std::pair<int32_t, int32_t>> scoreRows;  // (batch row, target index) this step
  };
  EngineOptions options_;
  llama_model *model_ = nullptr;
  llama_context *ctx_ = nullptr;
  const llama_vocab *vocabHandle_ = nullptr;
  int32_t vocab_ = 0;
  llama_batch batch_{};
  ggml_threadpool_t threadpool_ = nullptr;
  void (*freeThreadpool_)(ggml_threadpool_t) = nullptr;
  std::mutex incomingMutex_;
  std::vector<Request> incoming_;
  std::vector<int64_t> cancelled_;
  std::vector<Live> live_;
  std::unique_ptr<Workers> workers_;
  std::vector<std::vector<float>> scratch_;  // per worker
  std::vector<std::vector<int32_t>> order_;  // per worker
  int64_t decodes_ = 0;
  int64_t decodedTokens_ = 0;
  llama_adapter_lora *lora_ = nullptr;
};

}  // namespace wr1
