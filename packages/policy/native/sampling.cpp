#include "sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace wr1 {

namespace {
// This file is compiled with -ffast-math (scripts/build-native.mjs): the loops below then vectorise,
// expf through glibc's libmvec, and the sums are reordered into lanes; target_clones adds an AVX2
// build of each, picked at load time. Logits are finite (no logit biases are applied here). One
// draw is one pass over the vocabulary, so these loops are what a sampled token costs on the CPU.
#define WR1_VECTOR __attribute__((target_clones("avx2", "default")))

WR1_VECTOR float maxOf(const float *__restrict x, int32_t n) {
  float m = x[0];
  for (int32_t i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
  return m;
}

// w_i = exp(x_i − m).
WR1_VECTOR void expShifted(const float *__restrict x, int32_t n, float m, float *__restrict w) {
  for (int32_t i = 0; i < n; i++) w[i] = std::exp(x[i] - m);
}

WR1_VECTOR double sumOf(const float *__restrict w, int32_t n) {
  double s = 0;
  for (int32_t i = 0; i < n; i++) s += w[i];
  return s;
}

// w_i = exp(x_i − max) and Σ w_i; sets `max`.
double expWeights(const float *x, int32_t n, float *w, float &max) {
  max = maxOf(x, n);
  expShifted(x, n, max, w);
  return sumOf(w, n);
}

// log Σ exp(x_i) (`scratch` holds the weights).
double logSumExp(const float *x, int32_t n, std::vector<float> &scratch) {
  scratch.resize(n);
  float max = 0;
  const double s = expWeights(x, n, scratch.data(), max);
  return max + std::log(s);
}

double uniform(std::mt19937_64 &rng) { return (double)(rng() >> 11) * 0x1.0p-53; }
}  // namespace

float logProbabilityOf(const float *logits, int32_t vocab, int32_t token, std::vector<float> &scratch) {
  return (float)(logits[token] - logSumExp(logits, vocab, scratch));
}

Draw sampleToken(const float *logits, int32_t vocab, const SamplingSettings &s, std::mt19937_64 &rng,
                 std::vector<float> &scratch, std::vector<int32_t> &order) {
  const bool truncating = (s.topK > 0 && s.topK < vocab) || s.topP < 1.0f;
  if (s.temperature <= 0) {  // greedy
    const int32_t best = (int32_t)(std::max_element(logits, logits + vocab) - logits);
    return {best, (float)(logits[best] - logSumExp(logits, vocab, scratch))};
  }
  if (s.temperature == 1.0f && !truncating) {
    // Inverse CDF over the weights of the one pass (no sort, no second exp).
    scratch.resize(vocab);
    float max = 0;
    const double total = expWeights(logits, vocab, scratch.data(), max);
    const double lse1 = max + std::log(total);
    // Whole blocks are skipped by their (vectorised) sums; the draw's block is scanned token by token.
    const double u = uniform(rng) * total;
    double acc = 0;
    constexpr int32_t block = 256;
    for (int32_t start = 0; start < vocab; start += block) {
      const int32_t end = std::min(vocab, start + block);
      const double blockSum = sumOf(scratch.data() + start, end - start);
      if (u >= acc + blockSum) {
        acc += blockSum;
        continue;
      }
      for (int32_t i = start; i < end; i++) {
        acc += scratch[i];
        if (u < acc) return {i, (float)(logits[i] - lse1)};
      }
    }
    int32_t last = vocab - 1;  // rounding left u above the sum: the last token that has weight
    while (last > 0 && scratch[last] == 0) last--;
    return {last, (float)(logits[last] - lse1)};
  }
  const double lse1 = logSumExp(logits, vocab, scratch);
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
