// Token sampling from raw logits with the exact temperature-1 log-probability of the sampled
// token (what the learner trains on), whatever temperature / top-k / top-p the draw used.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace wr1 {

struct SamplingSettings {
  float temperature = 1.0f;
  int32_t topK = 0;    // 0: no truncation
  float topP = 1.0f;   // 1: no truncation
};

struct Draw {
  int32_t token;
  float logprob;  // log p(token) at temperature 1, no truncation
};

// log p(token) at temperature 1 (teacher-forced scoring).
float logProbabilityOf(const float *logits, int32_t vocab, int32_t token, std::vector<float> &scratch);

// `scratch` is reused across calls to avoid allocations per token.
Draw sampleToken(const float *logits, int32_t vocab, const SamplingSettings &s, std::mt19937_64 &rng,
                 std::vector<float> &scratch, std::vector<int32_t> &order);

}  // namespace wr1
