#include "sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace wr1 {

namespace {
// log Σ exp(x_i): the normaliser of the temperature-1 distribution.
double logSumExp(const float *x, int32_t n) {
  float m = x[0];
  for (int32_t i = 1; i < n; i++) m = std::max(m, x[i]);
  double s = 0;
  for (int32_t i = 0; i < n; i++) s += std::exp((double)x[i] - m);
  return m + std::log(s);
}

double uniform(std::mt19937_64 &rng) { return (double)(rng() >> 11) * 0x1.0p-53; }
}  // namespace

float logProbabilityOf(const float *logits, int32_t vocab, int32_t token) {
  return (float)(logits[token] - logSumExp(logits, vocab));
}

Draw sampleToken(const float *logits, int32_t vocab, const SamplingSettings &s, std::mt19937_64 &rng,
                 std::vector<float> &scratch, std::vector<int32_t> &order) {
  const double lse1 = logSumExp(logits, vocab);
  const bool truncating = (s.topK > 0 && s.topK < vocab) || s.topP < 1.0f;
  if (s.temperature <= 0) {  // greedy
    const int32_t best = (int32_t)(std::max_element(logits, logits + vocab) - logits);
    return {best, (float)(logits[best] - lse1)};
  }
  if (s.temperature == 1.0f && !truncating) {
    // Inverse CDF over exp(x − lse): one pass, no sort.
    double u = uniform(rng), acc = 0;
    for (int32_t i = 0; i < vocab; i++) {
      acc += std::exp((double)logits[i] - lse1);
      if (u < acc) return {i, (float)(logits[i] - lse1)};
    }
    const int32_t last = vocab - 1;
    return {last, (float)(logits[last] - lse1)};
  }
  // Temperature, then top-k, then top-p over the scaled distribution.
  order.resize(vocab);
  std::iota(order.begin(), order.end(), 0);
  int32_t keep = vocab;
  if (truncating) {
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
    if (s.topK > 0 && s.topK < keep) keep = s.topK;
  }
  scratch.resize(keep);
  float m = logits[order[0]];
  for (int32_t i = 1; i < keep; i++) m = std::max(m, logits[order[i]]);
  double total = 0;
  for (int32_t i = 0; i < keep; i++) total += scratch[i] = (float)std::exp(((double)logits[order[i]] - m) / s.temperature);
  if (s.topP < 1.0f) {
    double acc = 0;
    for (int32_t i = 0; i < keep; i++) {
      acc += scratch[i] / total;
      if (acc >= s.topP) {
        keep = i + 1;
        break;
      }
    }
    total = 0;
    for (int32_t i = 0; i < keep; i++) total += scratch[i];
  }
  double u = uniform(rng) * total, acc = 0;
  int32_t pick = order[keep - 1];
  for (int32_t i = 0; i < keep; i++) {
    acc += scratch[i];
    if (u < acc) {
      pick = order[i];
      break;
    }
  }
  return {pick, (float)(logits[pick] - lse1)};
}

}  // namespace wr1
