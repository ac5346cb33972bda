#include "engine.h"

#include <algorithm>
#include <cstdio>
#include <memory>

#include "ggml-backend.h"

namespace wr1 {

namespace {
// llama.cpp logs every load step at INFO; keep warnings and errors while loading, then give the
// process-wide logger back (node-llama-cpp in the same process has its own).
void quietLog(ggml_log_level level, const char *text, void *) {
  if (level == GGML_LOG_LEVEL_ERROR || level == GGML_LOG_LEVEL_WARN) fputs(text, stderr);
}
struct QuietLogs {
  ggml_log_callback previous = nullptr;
  void *data = nullptr;
  QuietLogs() {
    llama_log_get(&previous, &data);
    llama_log_set(quietLog, nullptr);
  }
  ~QuietLogs() { llama_log_set(previous, data); }
};
}  // namespace

Engine::Engine(const std::string &modelPath, const EngineOptions &o) : options_(o) {
  QuietLogs quiet;
  // node-llama-cpp's libraries load their CPU (and GPU) backends at run time.
  if (ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU) == nullptr)
    ggml_backend_load_all_from_path(o.backendsDir.c_str());
  llama_backend_init();
  llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = o.gpuLayers;
  model_ = llama_model_load_from_file(modelPath.c_str(), mp);
  if (!model_) throw Error("could not load the model " + modelPath);
  vocabHandle_ = llama_model_get_vocab(model_);
  vocab_ = llama_vocab_n_tokens(vocabHandle_);
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = (uint32_t)o.contextPerSequence * (uint32_t)o.sequences;
  cp.n_seq_max = (uint32_t)o.sequences;
  cp.n_batch = (uint32_t)o.batchSize;
  cp.n_ubatch = (uint32_t)std::min(o.batchSize, 512);
  cp.n_threads = o.threads;
  cp.n_threads_batch = o.threads;
  cp.flash_attn_type = o.flashAttention ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED;
  cp.no_perf = true;
  // Unified: one KV buffer that every sequence's attention spans (fastest at 16 sequences here,
  // slower at 64); per-sequence streams: attention over a sequence's own cells, and llama.cpp puts
  // only consecutive sequence ids in one ubatch, so each step's batch is ordered by id.
  cp.kv_unified = o.unifiedKv;
  if (o.cacheType >= 0) cp.type_k = cp.type_v = (ggml_type)o.cacheType;
  ctx_ = llama_init_from_model(model_, cp);
  if (!ctx_) {
    llama_model_free(model_);
    throw Error("could not create a llama.cpp context (" + std::to_string(cp.n_ctx) + " cells)");
  }
  batch_ = llama_batch_init(o.batchSize, 0, 1);
  workers_ = std::make_unique<Workers>(std::max(1, o.threads));
  scratch_.resize(workers_->size());
  order_.resize(workers_->size());
  // A persistent CPU thread pool: without one, every llama_decode sets up its worker threads anew
  // (node-llama-cpp's contexts attach none).
  ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
  ggml_backend_reg_t reg = cpu ? ggml_backend_dev_backend_reg(cpu) : nullptr;
  if (reg) {
    auto create = (ggml_threadpool_t(*)(ggml_threadpool_params *))ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_new");
    freeThreadpool_ = (void (*)(ggml_threadpool_t))ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_free");
    if (create && freeThreadpool_) {
      ggml_threadpool_params tp = ggml_threadpool_params_default(o.threads);
      threadpool_ = create(&tp);
      if (threadpool_) llama_attach_threadpool(ctx_, threadpool_, threadpool_);
    }
  }
}

Engine::~Engine() {
  llama_batch_free(batch_);
  if (ctx_) llama_free(ctx_);
  if (lora_) llama_adapter_lora_free(lora_);
  if (threadpool_) freeThreadpool_(threadpool_);
  if (model_) llama_model_free(model_);
}

void Engine::submit(Request r) {
  if (r.sequence < 0 || r.sequence >= options_.sequences)
    throw Error("sequence " + std::to_string(r.sequence) + " is outside [0, " + std::to_string(options_.sequences) + ")");
  if (r.feed.empty()) throw Error("nothing to evaluate: a request needs at least one token");
  if (r.position < 0 || r.position + (int64_t)r.feed.size() > options_.contextPerSequence)
    throw Error("sequence needs " + std::to_string(r.position + (int64_t)r.feed.size()) + " tokens, the context holds " +
                std::to_string(options_.contextPerSequence) + " per sequence");
  for (int32_t t : r.feed)
    if (t < 0 || t >= vocab_) throw Error("token " + std::to_string(t) + " is outside the vocabulary");
  if (r.scoreFirst >= 0) {
    if (r.targets.empty() || r.scoreFirst + r.targets.size() != r.feed.size())
      throw Error("scoring needs one target per scored row (" + std::to_string(r.feed.size() - r.scoreFirst) +
                  "), got " + std::to_string(r.targets.size()));
    for (int32_t t : r.targets)
      if (t < 0 || t >= vocab_) throw Error("token " + std::to_string(t) + " is outside the vocabulary");
  }
  std::lock_guard<std::mutex> lock(incomingMutex_);
  incoming_.push_back(std::move(r));
}

void Engine::cancel(int64_t id) {
  std::lock_guard<std::mutex> lock(incomingMutex_);
  cancelled_.push_back(id);
}

void Engine::setLora(const std::string &path, float scale) {
  QuietLogs quiet;
  llama_adapter_lora *next = nullptr;
  if (!path.empty()) {
    next = llama_adapter_lora_init(model_, path.c_str());
    if (!next) throw Error("could not load the LoRA adapter " + path);
  }
  applyLora(next, scale, path);
}

void Engine::setLoraBytes(const uint8_t *data, size_t size, float scale) {
  QuietLogs quiet;
  // llama.cpp reads adapters from a FILE*: a read-only stream over the bytes (POSIX fmemopen).
  FILE *f = fmemopen(const_cast<uint8_t *>(data), size, "rb");
  if (!f) throw Error("could not open an in-memory stream over the LoRA adapter");
  llama_adapter_lora *next = llama_adapter_lora_init_from_file_ptr(model_, f);
  std::fclose(f);
  if (!next) throw Error("could not load the in-memory LoRA adapter (" + std::to_string(size) + " bytes)");
  applyLora(next, scale, "(in memory)");
}

void Engine::applyLora(llama_adapter_lora *next, float scale, const std::string &label) {
  float scales[1] = {scale};
  if (llama_set_adapters_lora(ctx_, next ? &next : nullptr, next ? 1 : 0, next ? scales : nullptr) != 0) {
    if (next) llama_adapter_lora_free(next);
    throw Error("llama.cpp refused the LoRA adapter " + label);
  }
  // The context no longer refers to the previous adapter.
  if (lora_) llama_adapter_lora_free(lora_);
  lora_ = next;
}

void Engine::clear(int32_t sequence) { llama_memory_seq_rm(llama_get_memory(ctx_), sequence, -1, -1); }

std::vector<Result> Engine::run(int32_t steps) {
  std::vector<Result> done;
  // Requests join only here, between calls: which requests share a step then depends on what the
  // caller submitted, not on thread timing, so a seeded run decodes the same batches (and rounds
  // the same way) every time.
  {
    std::lock_guard<std::mutex> lock(incomingMutex_);
    for (auto &r : incoming_) {
      Live l;
      l.rng.seed(r.seed);
      l.result.id = r.id;
      for (auto &s : r.stops) l.longestStop = std::max(l.longestStop, s.size());
      l.request = std::move(r);
      if (l.request.maxTokens <= 0) {  // nothing to sample: just evaluate the feed
        l.result.finish = "length";
      }
      live_.push_back(std::move(l));
    }
    incoming_.clear();
  }
  // A call ends after the first step in which a request finished, so its caller can go on (and
  // submit the sequence's next turn) without waiting for the rest of the chunk.
  for (int32_t step = 0; step < steps && done.empty(); step++) {
    {
      std::lock_guard<std::mutex> lock(incomingMutex_);
      for (int64_t id : cancelled_)
        for (auto it = live_.begin(); it != live_.end(); ++it)
          if (it->request.id == id) {
            it->result.finish = "cancelled";
            done.push_back(std::move(it->result));
            live_.erase(it);
            break;
          }
      cancelled_.clear();
    }
    if (live_.empty()) break;
    std::stable_sort(live_.begin(), live_.end(),
                     [](const Live &a, const Live &b) { return a.request.sequence < b.request.sequence; });
    // One batch: each request's unevaluated feed (prompt chunks share the batch budget), or its
    // last sampled token. Logits only where a token is sampled next.
    batch_.n_tokens = 0;
    int32_t budget = options_.batchSize;
    // Every live request starts the step with no rows: those the batch has no room for this step
    // must not read last step's.
    for (auto &l : live_) {
      l.batchIndex = -1;
      l.scoreRows.clear();
    }
    for (auto &l : live_) {
      const auto &feed = l.request.feed;
      const size_t left = feed.size() - l.fed;
      const size_t take = std::min<size_t>(left, (size_t)budget);
      if (take == 0) continue;
      for (size_t k = 0; k < take; k++) {
        const int32_t i = batch_.n_tokens++;
        batch_.token[i] = feed[l.fed + k];
        batch_.pos[i] = l.request.position + (int32_t)(l.fed + k);
        batch_.n_seq_id[i] = 1;
        batch_.seq_id[i][0] = l.request.sequence;
        const int32_t scored = (int32_t)(l.fed + k) - l.request.scoreFirst;
        batch_.logits[i] = l.request.scoreFirst >= 0 && scored >= 0;
        if (batch_.logits[i]) l.scoreRows.emplace_back(i, scored);
      }
      l.fed += take;
      budget -= (int32_t)take;
      if (l.fed == feed.size()) {
        batch_.logits[batch_.n_tokens - 1] = 1;
        l.batchIndex = batch_.n_tokens - 1;
      }
      if (budget == 0) break;
    }
    if (batch_.n_tokens > 0) {
      const int32_t rc = llama_decode(ctx_, batch_);
      decodes_++;
      decodedTokens_ += batch_.n_tokens;
      if (rc != 0) throw Error("llama_decode failed (" + std::to_string(rc) + ")");
    }
    // Every row this step reads — scored rows and one draw per sampling sequence — is a pass over
    // the vocabulary; the workers take them in parallel, the rest below is sequential.
    struct RowJob {
      Live *live;
      const float *logits;
      int32_t target;  // scored token, or -1: draw one
      float logprob = 0;
      Draw draw{0, 0};
    };
    std::vector<RowJob> jobs;
    const auto logitsOf = [&](int32_t row) {
      const float *logits = llama_get_logits_ith(ctx_, row);
      if (!logits) throw Error("llama.cpp has no logits for batch row " + std::to_string(row));
      return logits;
    };
    for (auto &l : live_) {
      for (auto [row, target] : l.scoreRows) jobs.push_back({&l, logitsOf(row), l.request.targets[target]});
      if (l.batchIndex >= 0 && l.request.scoreFirst < 0 && l.result.finish.empty())
        jobs.push_back({&l, logitsOf(l.batchIndex), -1});
    }
    workers_->forEach((int32_t)jobs.size(), [&](int32_t i, int32_t w) {
      RowJob &j = jobs[i];
      if (j.target >= 0)
        j.logprob = logProbabilityOf(j.logits, vocab_, j.target, scratch_[w]);
      else
        j.draw = sampleToken(j.logits, vocab_, j.live->request.sampling, j.live->rng, scratch_[w], order_[w]);
    });
    size_t nextJob = 0;
    for (auto &l : live_) {
      for (size_t k = 0; k < l.scoreRows.size(); k++) l.result.logprobs.push_back(jobs[nextJob++].logprob);
      if (l.batchIndex < 0) continue;
      l.result.position = l.request.position + (int32_t)l.request.feed.size();
      if (l.request.scoreFirst >= 0) {
        l.result.finish = "scored";
        continue;
      }
      if (!l.result.finish.empty()) continue;  // maxTokens 0: evaluated only
      const Draw d = jobs[nextJob++].draw;
      l.result.tokens.push_back(d.token);
      l.result.logprobs.push_back(d.logprob);
      // The sampled token is fed next step (it is not in the KV cache yet).
      l.request.position = l.result.position;
      l.request.feed.assign(1, d.token);
      l.fed = 0;
      if (llama_vocab_is_eog(vocabHandle_, d.token)) {
        l.result.finish = "eos";
        continue;
      }
      if (l.longestStop > 0) {
        char piece[256];
        const int32_t n = llama_token_to_piece(vocabHandle_, d.token, piece, sizeof(piece), 0, true);
        if (n > 0) l.tail.append(piece, (size_t)n);
        for (auto &s : l.request.stops)
          if (!s.empty() && l.tail.find(s) != std::string::npos) {
            l.result.stop = s;
            l.result.finish = "stop";
            break;
          }
        if (!l.result.finish.empty()) continue;
        if (l.tail.size() > 4 * l.longestStop + 64) l.tail.erase(0, l.tail.size() - 2 * l.longestStop);
      }
      if ((int32_t)l.result.tokens.size() >= l.request.maxTokens) {
        l.result.finish = "length";
        continue;
      }
      // Go on only while the next sampled token still fits next to this one (the caller's sequence
      // never exceeds the context, so the learner can always score the whole trajectory).
      if (l.request.position + 2 > options_.contextPerSequence) l.result.finish = "context";
    }
    // Finished requests leave the batch; the last sampled token stays unevaluated (the caller
    // feeds it first next time, like the other engine's pending token).
    for (auto it = live_.begin(); it != live_.end();) {
      if (!it->result.finish.empty() && it->batchIndex >= 0) {
        done.push_back(std::move(it->result));
        it = live_.erase(it);
      } else {
        ++it;
      }
    }
  }
  return done;
}

}  // namespace wr1
